"""inhouse gateway: the one endpoint editors talk to, in front of the model servers.

Users, teams and tokens; adapter access; rate limits; an append-only audit log; adoption events; Prometheus
metrics; the `/admin` dashboard. Imports only `core` (the model servers are reached over HTTP).
"""
