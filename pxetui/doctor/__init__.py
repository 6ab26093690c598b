"""`pxetui doctor`: what on this host breaks network booting (host.py, firewall.py) and a
self-test that fetches what each architecture would get from the running engine (selftest.py)."""
