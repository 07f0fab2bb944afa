# Debian package of the appliance.
#
#   make deb    build dist/{python3-daebus,daebus,daebus-kiosk-demo,daebus-kiosk}_<version>_all.deb
#               (as root, missing build dependencies are installed with apt-get)
#   make lint   lintian on what `make deb` built (overrides are documented
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
SOURCES := daebus gateway kiosk kiosk_demo systemd debian docs pyproject.toml README.md
CLEAN_ENV := env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=$(CURDIR)/$(OUT) LC_ALL=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive
APT_GET := $(CLEAN_ENV) apt-get -y -q -o Dpkg::Use-Pty=0

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
	$(CLEAN_ENV) lintian --fail-on error,warning --display-info $(CHANGES)

clean-deb:
	rm -rf $(OUT) $(DEBS)

_apt:
	@if [ "$$(id -u)" != 0 ]; then echo "make: install $(PKGS) (or run as root)" >&2; exit 1; fi
	$(APT_GET) install --no-install-recommends $(PKGS) >/dev/null 2>&1 || \
	{ $(APT_GET) update >/dev/null && $(APT_GET) install --no-install-recommends $(PKGS) >/dev/null; }
