"""Invoicing: invoices, credit notes and billing runs over every enabled BillableSource."""
