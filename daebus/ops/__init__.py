"""Operations: configuration (files, environment, typed sections), logging
and the journal, systemd's notify protocol, and service metrics."""
