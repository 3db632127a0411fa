"""Continual improvement over HTTP: the register's routes and documents."""
