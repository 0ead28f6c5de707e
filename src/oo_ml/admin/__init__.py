"""The admin console, served by the service under ``/admin``: simulations, policies, users and
decisions, server-rendered, behind the admin token (see :mod:`oo_ml.admin.routes`)."""
