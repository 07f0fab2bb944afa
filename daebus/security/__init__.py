"""Who may do what on the bus: the ACL file rendered from worker files, and
the appliance's bus users and their secrets."""
