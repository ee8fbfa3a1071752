"""The administrator's console: registrations, people, paper consent, the audit log and deliveries."""
