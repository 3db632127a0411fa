"""What other tools send: their tickets, monitoring alerts, and receipts."""
