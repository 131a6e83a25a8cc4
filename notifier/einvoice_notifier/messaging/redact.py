"""The notifier's name for the shared redaction detectors (they live in einvoice_core.redaction so the
exporter's checks use the same ones)."""

from einvoice_core.redaction import (
    MARK_ID_CARD,
    MARK_INVOICE,
    MARK_NAME,
    MARK_PHONE,
    MARK_TAX_ID,
    id_card_valid,
    old_id_card_valid,
    old_taxpayer_id_valid,
    org_code_valid,
    redact,
    uscc_valid,
)

__all__ = [
    "MARK_ID_CARD",
    "MARK_INVOICE",
    "MARK_NAME",
    "MARK_PHONE",
    "MARK_TAX_ID",
    "id_card_valid",
    "old_id_card_valid",
    "old_taxpayer_id_valid",
    "org_code_valid",
    "redact",
    "uscc_valid",
]
