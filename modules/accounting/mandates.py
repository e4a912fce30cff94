"""DIRECT_DEBIT_MANDATES: the customer's active SEPA mandate, for the payment detail (MP19) of its e-invoices."""

from __future__ import annotations

from core.extension_points import DirectDebitMandate
from modules.accounting import sepa


class AccountingMandates:
    """The mandate SEPA collections would use: the customer's active one, the latest signed when it has several."""

    def direct_debit_mandate(self, customer_id: int) -> DirectDebitMandate | None:
        mandate = sepa.active_mandates([customer_id]).get(customer_id)
        if mandate is None:
            return None
        return DirectDebitMandate(reference=mandate.reference, iban=mandate.iban, signed_on=mandate.signed_on)
