"""An e-mail to a drop box's recipients when one of its files settles: what, why, where now.

Written for the partner who reads it: the file as they dropped it (its route folder and name),
the outcome, the reason sentence from result.json, and where the original and its result files
are now, as paths inside their own drop box (never a server path, never another partner's
name). Sent with smtplib over STARTTLS or implicit TLS, the server's certificate checked
against the system's CAs; the login comes from `smtp.credentials_file` and is never logged.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from dropbox_importer.config.model import SmtpConfig
from dropbox_importer.observe.errors import DeliveryError

# SMTP reply codes from 500 on are permanent: trying again cannot help (RFC 5321, 4.2.1).
PERMANENT = 500


def _rows(counts: Mapping[str, Any]) -> str:
    failed = int(counts.get("rows_failed", 0)) + int(counts.get("rows_failed_locally", 0))
    return (
        f"{counts.get('leads_processed', 0)} row(s) imported, {failed} failed, "
        f"{counts.get('rows_with_warning', 0)} with warnings"
    )


def compose(event: Mapping[str, Any], sender: str, recipients: Sequence[str]) -> EmailMessage:
    """The message for one settle event (see notify.settled_event)."""
    route, name = str(event.get("route") or ""), str(event.get("file"))
    dropped = f"{route}/{name}" if route else name
    where = str(event.get("location") or event.get("destination"))
    failed = event.get("outcome") == "failed"
    verdict = "was NOT imported" if failed else "was imported"
    lines = [
        f"The file {dropped} in drop box {event.get('dropbox')} {verdict}.",
        "",
    ]
    if failed:
        lines += [f"Why: {event.get('reason')}", ""]
    lines += [
        f"Rows: {_rows(event.get('counts') or {})}.",
        f"The original is kept byte for byte in {where}; beside it, {where}.result.json "
        "tells what happened to it" + (" and which rows failed." if not failed else "."),
    ]
    if failed:
        lines.append(
            f"Once the cause is fixed, upload the file again into inbox/{route}"
            + ("/." if route else ".")
        )
    batches = event.get("batch_ids") or []
    if batches:
        lines += ["", f"Marketo batch id(s): {', '.join(str(b) for b in batches)}."]
    lines += ["", f"Finished at {event.get('finished')} (UTC).", "", "-- dropbox-importer"]
    message = EmailMessage()
    outcome = "NOT imported" if failed else "imported"
    message["Subject"] = f"{name}: {outcome} ({event.get('dropbox')}, {route or 'inbox'})"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content("\n".join(lines) + "\n")
    return message


def _login(client: smtplib.SMTP, user: str, password: str) -> None:
    """Log in with one mechanism, inside TLS: PLAIN, else LOGIN, else what smtplib picks.

    smtplib's own `login` tries every mechanism in turn, and servers that hang up after a
    refused one turn "wrong password" into "disconnected"; one try reports the refusal as is.
    """
    client.ehlo_or_helo_if_needed()
    offered = client.esmtp_features.get("auth", "").upper().split()
    for mechanism in ("PLAIN", "LOGIN"):
        if mechanism in offered:
            client.user, client.password = user, password
            answer = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            client.auth(mechanism, answer)
            return
    client.login(user, password)


def send(smtp: SmtpConfig, recipients: Sequence[str], event: Mapping[str, Any]) -> None:
    """Deliver the event's message; DeliveryError (final when retrying cannot help) if not."""
    message = compose(event, smtp.sender, recipients)
    context = ssl.create_default_context()
    timeout = smtp.timeout_seconds
    try:
        client: smtplib.SMTP
        if smtp.security == "tls":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.username is not None:
                _login(client, smtp.username, smtp.password)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"the SMTP server refused the login ({exc.smtp_code})", final=True
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        final = all(code >= PERMANENT for code in codes)
        raise DeliveryError(f"every recipient was refused (SMTP {codes})", final=final) from None
    except smtplib.SMTPResponseException as exc:
        final = exc.smtp_code >= PERMANENT
        raise DeliveryError(f"SMTP {exc.smtp_code} from {smtp.host}", final=final) from None
    except ssl.SSLCertVerificationError as exc:
        raise DeliveryError(
            f"the certificate of {smtp.host} is not trusted ({exc.verify_message})", final=True
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(
            f"{smtp.host} offers no STARTTLS: use security: tls or another server", final=True
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(
            f"cannot talk to {smtp.host}:{smtp.port} ({type(exc).__name__})"
        ) from None
    if refused:
        # The others got it: sending again would give them a second copy.
        raise DeliveryError(f"{len(refused)} recipient(s) refused; the others got it", final=True)
