"""Accounts for the web pages a fleet reaches over the floor's network (docs/fleet.md, "Accounts and the
floor's network"): people with a role (roles.py), their scrypt-hashed passwords (passwords.py), kept in
the catalogue database so one account works at every station (store.py), and expiring login sessions
(sessions.py). A single station on loopback uses none of this: its pages keep their per-run token."""
