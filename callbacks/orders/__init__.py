"""The paid order, through kco-sync: read live from Order Management, captured, refunded,
cancelled (api.py, service.py), and the push's check of what was paid (paid_check.py)."""
