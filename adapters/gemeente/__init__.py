"""The gemeente adapter: iWmo 3.2 messages in and out of the hub.

Inbound heen messages (301, 305, 307, 315, 317, 319) are validated, checked and applied to the hub
as FHIR (one transaction per message), each answered with its retour message (302 ... 320). Retour
messages received for what the adapter sent are recorded. Outbound, the adapter watches the hub and
writes 305/307 (start/stop zorg) and 315 (verzoek om toewijzing). Transports: a file drop
(``adapter-gemeente run``) and an HTTP inbox (``adapter-gemeente serve``).
"""
