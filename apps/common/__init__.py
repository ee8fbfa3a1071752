"""Shared parts of the backend-for-frontend apps (never imports ``hub``)."""
