"""billing: fees, invoices, payments, deposits and the arrears ladder (SPEC §4)."""
