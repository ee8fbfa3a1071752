"""Storage: the tables (:mod:`tables`), Alembic migrations (:mod:`migrate`), the database and its
transactions (:mod:`db`), resource rows (:mod:`resources`, :mod:`pg_writes`), the repository every
interaction goes through (:mod:`repository`), and search to SQL (:mod:`search`)."""

__all__: list[str] = []
