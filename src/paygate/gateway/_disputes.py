"""Disputes, as flows (see ``_sansio``): read them, answer with evidence, or accept.

A dispute's effect on its payment (``disputed``, then back or ``charged_back``) comes
through the payment state machine, from the provider's webhooks and answers; these calls
only talk to the provider, each through the retry policy.
"""

from __future__ import annotations

import logging

from paygate._observe import fields
from paygate.errors import ValidationError
from paygate.gateway._sansio import Flow, provider
from paygate.gateway._state_sync import StateSync
from paygate.models import Dispute, DisputeEvidence
from paygate.provider import PaymentProvider, SubscriptionProvider

__all__ = ["DisputeFlows"]

_log = logging.getLogger("paygate")


class DisputeFlows(StateSync):
    """The dispute operations, each a flow."""

    def _get_dispute(self, dispute_id: str) -> Flow[Dispute]:
        self._check_id(dispute_id, "dispute_id")
        return (
            yield from self._call(
                "get_dispute", lambda: provider(PaymentProvider.get_dispute, dispute_id)
            )
        )

    def _list_disputes(self, payment_id: str | None) -> Flow[list[Dispute]]:
        if payment_id is not None:
            self._check_id(payment_id, "payment_id")
        return (
            yield from self._call(
                "list_disputes",
                lambda: provider(SubscriptionProvider.list_disputes, payment_id=payment_id),
            )
        )

    def _submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool
    ) -> Flow[Dispute]:
        self._check_id(dispute_id, "dispute_id")
        if not isinstance(evidence, DisputeEvidence):
            raise ValidationError(
                f"evidence must be a paygate.DisputeEvidence, got {type(evidence).__name__}"
            )
        dispute = yield from self._call(
            "submit_dispute_evidence",
            lambda: provider(
                SubscriptionProvider.submit_dispute_evidence, dispute_id, evidence, submit=submit
            ),
        )
        _log.info(
            "submit_dispute_evidence %s submit=%s (%d file(s)) -> %s",
            dispute_id,
            submit,
            len(evidence.files),
            dispute.status.value,
            extra=fields(operation="submit_dispute_evidence"),
        )
        return dispute

    def _accept_dispute(self, dispute_id: str) -> Flow[Dispute]:
        self._check_id(dispute_id, "dispute_id")
        dispute = yield from self._call(
            "accept_dispute",
            lambda: provider(SubscriptionProvider.accept_dispute, dispute_id),
        )
        _log.info(
            "accept_dispute %s -> %s",
            dispute_id,
            dispute.status.value,
            extra=fields(operation="accept_dispute"),
        )
        return dispute
