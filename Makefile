# Debian package of the appliance.
#
#   make deb    build dist/{python3-daebus,daebus,daebus-kiosk-demo,daebus-kiosk}_<version>_all.deb
#               (as root, missing build dependencies are installed with apt-get)
#   make lint   lintian --pedantic on what `make deb` built (overrides are documented
#               in debian/*lintian-overrides)
#
# The build runs in a copy of the sources under build/deb/ with a clean
# environment: a pyenv or venv python3 first on PATH would otherwise be the
# interpreter pybuild builds for.

VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' daebus/__init__.py)
ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
OUT := build/deb
STAGE := $(OUT)/daebus-$(VERSION)
PACKAGES := python3-daebus daebus daebus-kiosk-demo daebus-kiosk daebus-bridge
DEBS := $(foreach p,$(PACKAGES),dist/$(p)_$(VERSION)_all.deb)
CHANGES := $(OUT)/daebus_$(VERSION)_$(ARCH).changes
# The whole tree but what git ignores: the source package carries the tests
# (debian/tests runs them), the benchmarks and the examples.
SOURCES := daebus gateway kiosk kiosk_demo systemd debian docs tests bench examples \
	pyproject.toml README.md LICENSE Makefile dev
CLEAN_ENV := env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=$(CURDIR)/$(OUT) LC_ALL=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive
# Another apt or dpkg (unattended-upgrades, a second build) may hold the
# lock: wait for it, as apt does when told to, instead of failing at once.
APT_GET := $(CLEAN_ENV) apt-get -y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600
# The Maintainer field is a placeholder (docs/packaging.md): whoever builds
# packages to distribute sets theirs, e.g. make deb MAINTAINER="Jane Doe <jane@example.com>".
MAINTAINER ?=

.PHONY: deb lint clean-deb

deb:
	@test -n "$(VERSION)" || { echo "make: no __version__ in daebus/__init__.py" >&2; exit 1; }
	@for dir in $(SOURCES); do test -e "$$dir" || { echo "make: $$dir is missing" >&2; exit 1; }; done
	@command -v dpkg-buildpackage >/dev/null || $(MAKE) --no-print-directory _apt PKGS=dpkg-dev
	@changelog=$$(dpkg-parsechangelog -l debian/changelog -S Version); \
	if [ "$$changelog" != "$(VERSION)" ]; then \
	    echo "make: debian/changelog is at $$changelog but daebus/__init__.py says $(VERSION):" \
	         "add a changelog entry for $(VERSION)" >&2; exit 1; fi
	rm -rf $(OUT) && mkdir -p $(STAGE)
	tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' $(SOURCES) | tar -x -C $(STAGE)
	@if [ -n "$(MAINTAINER)" ]; then \
	    sed -i 's/^Maintainer: .*/Maintainer: $(MAINTAINER)/' $(STAGE)/debian/control; \
	    sed -i '0,/^ -- .*>  /s// -- $(MAINTAINER)  /' $(STAGE)/debian/changelog; fi
	@cd $(STAGE) && if ! $(CLEAN_ENV) dpkg-checkbuilddeps 2>/dev/null; then \
	    if [ "$$(id -u)" != 0 ]; then $(CLEAN_ENV) dpkg-checkbuilddeps; \
	        echo "make: install the build dependencies above (or run as root)" >&2; exit 1; fi; \
	    echo "make: installing build dependencies"; \
	    $(APT_GET) build-dep --no-install-recommends ./ >/dev/null 2>&1 || \
	    { $(APT_GET) update >/dev/null && $(APT_GET) build-dep --no-install-recommends ./ >/dev/null; }; \
	fi
	cd $(STAGE) && $(CLEAN_ENV) dpkg-buildpackage -us -uc -ui
	mkdir -p dist && for p in $(PACKAGES); do cp $(OUT)/$${p}_$(VERSION)_all.deb dist/; done
	@echo "built $(DEBS)"

lint:
	@test -f $(CHANGES) || { echo "make: run 'make deb' first" >&2; exit 1; }
	@command -v lintian >/dev/null || $(MAKE) --no-print-directory _apt PKGS=lintian
	$(CLEAN_ENV) lintian --pedantic --fail-on error,warning,pedantic --display-info $(CHANGES)

clean-deb:
	rm -rf $(OUT) $(DEBS)

_apt:
	@if [ "$$(id -u)" != 0 ]; then echo "make: install $(PKGS) (or run as root)" >&2; exit 1; fi
	$(APT_GET) install --no-install-recommends $(PKGS) >/dev/null 2>&1 || \
	{ $(APT_GET) update >/dev/null && $(APT_GET) install --no-install-recommends $(PKGS) >/dev/null; }
