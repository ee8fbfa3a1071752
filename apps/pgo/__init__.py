"""The PGO: a client (or a mantelzorger acting for them) sees and manages their shared care data."""
