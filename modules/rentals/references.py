"""The InvoiceReferenceProvider of rentals: a contract's procurement references (CIG, CUP, customer's contract or
order) that invoicing copies onto each draft of the contract for the FatturaPA (DatiContratto / DatiOrdineAcquisto),
and whose customer each contract is."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from core.db import db
from core.extension_points import InvoiceReference
from core.models import Partner
from modules.rentals.models import Contract


class ContractReferences:
    """References of the contracts that have a CIG, a CUP or the customer's own number, or whose customer is a public
    administration (which always expects the contract's number and date on its invoices)."""

    def invoice_references(self, contract_ids: Sequence[int]) -> dict[int, InvoiceReference]:
        if not contract_ids:
            return {}
        rows = db.session.execute(
            sa.select(
                Contract.id,
                Contract.number,
                Contract.start_date,
                Contract.order_kind,
                Contract.order_reference,
                Contract.order_date,
                Contract.cig,
                Contract.cup,
            )
            .join(Partner, Partner.id == Contract.customer_id)
            .where(Contract.id.in_(list(contract_ids)))
            .where(
                sa.or_(
                    Contract.cig.is_not(None),
                    Contract.cup.is_not(None),
                    Contract.order_reference.is_not(None),
                    Partner.public_administration.is_(True),
                )
            )
        )
        return {
            row.id: InvoiceReference(
                kind=row.order_kind,
                reference=row.order_reference or row.number,
                date=row.order_date or row.start_date,
                cig=row.cig,
                cup=row.cup,
            )
            for row in rows
        }

    def contract_customers(self, contract_ids: Sequence[int]) -> dict[int, int]:
        if not contract_ids:
            return {}
        query = sa.select(Contract.id, Contract.customer_id).where(Contract.id.in_(list(contract_ids)))
        return {row.id: row.customer_id for row in db.session.execute(query)}
