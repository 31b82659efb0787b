"""dicomseal_gate: Orthanc keeps an instance only once dicomseal attested it.

An Orthanc Python plugin script (Debian's orthanc-python 4.0, for Orthanc
1.10). Orthanc calls OnIncomingCStore for each instance a modality sends by
C-STORE, and OnReceivedInstance for every instance it receives any other
way (REST upload, STOW-RS), before it stores it. The script posts the file to dicomseal's
POST /v1/instances with an ingest token and tells Orthanc to keep it only
when dicomseal answers 201 (attested now) or 200 (attested before).
Anything else is not kept (it may be saved in a quarantine folder) and is
logged with dicomseal's problem type and detail; a modality gets the
C-STORE failure status 0xC000 (refused) or 0xA700 (dicomseal unreachable).

When dicomseal cannot be reached (or answers 5xx), DICOMSEAL_UNREACHABLE
decides: "refuse" (the default) discards, so the sender retries later;
"outbox" keeps the instance in Orthanc and writes it, durably, to
DICOMSEAL_OUTBOX_DIR, from where a background thread posts it until it is
attested, deleting it from Orthanc if dicomseal refuses it. Nothing is
kept without being attested or in the outbox.

The callback runs synchronously inside Orthanc's core: it never calls
Orthanc's REST API (that would deadlock), and every request to dicomseal
has a timeout (DICOMSEAL_TIMEOUT seconds, default 30). Only the outbox
thread, outside the callback, calls the REST API.

Configuration, from Orthanc's environment:
  DICOMSEAL_URL             dicomseal's base URL, e.g. https://dicomseal.example.org
  DICOMSEAL_TOKEN_FILE      a file holding an ingest token
  DICOMSEAL_UNREACHABLE     refuse (default) or outbox
  DICOMSEAL_OUTBOX_DIR      the outbox (required in outbox mode)
  DICOMSEAL_QUARANTINE_DIR  where refused instances are saved (unset: discarded)
  DICOMSEAL_TIMEOUT         seconds per request to dicomseal (default 30)
  DICOMSEAL_CA_FILE         a CA bundle for dicomseal's TLS certificate (optional)
"""

import hashlib
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.request

import orthanc

URL = os.environ.get("DICOMSEAL_URL", "").rstrip("/")
TOKEN_FILE = os.environ.get("DICOMSEAL_TOKEN_FILE", "")
MODE = os.environ.get("DICOMSEAL_UNREACHABLE", "refuse")
OUTBOX = os.environ.get("DICOMSEAL_OUTBOX_DIR", "")
QUARANTINE = os.environ.get("DICOMSEAL_QUARANTINE_DIR", "")
TIMEOUT = float(os.environ.get("DICOMSEAL_TIMEOUT", "30"))
CA_FILE = os.environ.get("DICOMSEAL_CA_FILE", "")

KEEP = (orthanc.ReceivedInstanceAction.KEEP_AS_IS, None)


class Unreachable(Exception):
    """dicomseal did not answer, or answered that it cannot attest now."""


def _token():
    # Read at each request: a rotated token file takes effect at once. The
    # last non-empty line, so that `dicomseal tokens create > file` works.
    with open(TOKEN_FILE) as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise ValueError("the token file %s is empty" % TOKEN_FILE)
    return lines[-1]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect (an SSO page, http to https) is no attestation: urllib
    # would replay the POST as a GET, with the token, and take its 200.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_handlers = [_NoRedirects()]
if CA_FILE:
    _handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=CA_FILE)))
_opener = urllib.request.build_opener(*_handlers)

PROBLEMS = "https://dicomseal.dev/problems/"
# Answers of dicomseal's that judge the instance itself; any other status
# (401/403: the token; 404/405: the URL; 408: too slow; 413: a limit…) is
# about the gate, not the image, and is handled as dicomseal unreachable.
REFUSING = (400, 409, 415)

# After dicomseal was found unreachable, it is taken for unreachable for
# this long without asking: Orthanc holds its plugins' lock during the
# callbacks, so each wait would stall every modality in turn.
BACKOFF = 10
_down_until = 0.0


def attest(data):
    """Posts data to dicomseal: (status, problem) when dicomseal judged the
    instance (attested or refused), Unreachable for anything else."""
    global _down_until
    if time.monotonic() < _down_until:
        raise Unreachable("dicomseal was unreachable moments ago")
    try:
        return _attest(data)
    except Unreachable:
        _down_until = time.monotonic() + BACKOFF
        raise


def _attest(data):
    try:
        req = urllib.request.Request(URL + "/v1/instances", data=data, method="POST", headers={
            "Content-Type": "application/dicom",
            "Authorization": "Bearer " + _token(),
        })
        with _opener.open(req, timeout=TIMEOUT) as resp:
            answer = json.loads(resp.read())
            status = resp.status
    except urllib.error.HTTPError as e:
        try:
            problem = json.loads(e.read())
        except Exception:
            problem = None
        if not isinstance(problem, dict):
            problem = {}
        if e.code in REFUSING and str(problem.get("type", "")).startswith(PROBLEMS):
            return e.code, problem
        raise Unreachable("%d %s: %s" % (e.code, problem.get("type", ""), problem.get("detail", "")))
    except Exception as e:  # refused, reset, timed out, DNS, a bad answer, the token file
        raise Unreachable("%s: %s" % (type(e).__name__, e))
    # A 2xx counts only as an attestation of these very bytes.
    digest = hashlib.sha256(data).hexdigest()
    if status not in (200, 201) or not isinstance(answer, dict) or \
            (answer.get("digests") or {}).get("file") != digest:
        raise Unreachable("%d without an attestation of these bytes" % status)
    return status, None


def _write_durably(folder, name, data):
    """Writes data as folder/name: temporary file, fsync, rename, fsync of the folder."""
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(folder, name))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _name(data):
    return hashlib.sha256(data).hexdigest() + ".dcm"


def refused(status, problem, data):
    orthanc.LogError("dicomseal refused an instance (%d %s): %s; Orthanc does not keep it%s" % (
        status, problem.get("type", ""), problem.get("detail", ""),
        " (saved in %s)" % QUARANTINE if QUARANTINE else ""))
    if QUARANTINE:
        try:
            _write_durably(QUARANTINE, _name(data), data)
        except Exception as e:  # the refusal stands without its copy
            orthanc.LogError("dicomseal quarantine: %s" % e)


# DIMSE statuses a modality gets for an instance Orthanc did not keep
# (PS3.4 C.4.2.1.5): out of resources while dicomseal cannot be reached (a
# modality retries those), cannot understand once dicomseal refused it.
STATUS_UNREACHABLE = 0xA700
STATUS_REFUSED = 0xC000


def decide(data):
    """None to keep data, else the DIMSE status of its refusal. Never
    raises: an exception in the received-instance callback would make
    Orthanc keep the instance."""
    try:
        return _decide(data)
    except Exception as e:
        orthanc.LogError("dicomseal gate: %s: %s; Orthanc does not keep the instance" % (type(e).__name__, e))
        return STATUS_UNREACHABLE


def _decide(data):
    try:
        status, problem = attest(data)
    except Unreachable as e:
        if MODE == "outbox":
            # Durable before Orthanc keeps it (a failed write raises, and
            # the instance is not kept): the outbox thread attests it, or
            # takes it out of Orthanc again.
            _write_durably(OUTBOX, _name(data), data)
            orthanc.LogWarning("dicomseal is unreachable (%s): instance kept in the outbox %s until attested" % (e, OUTBOX))
            return None
        orthanc.LogError("dicomseal is unreachable (%s): Orthanc does not keep the instance; the sender may retry" % e)
        return STATUS_UNREACHABLE
    if status in (200, 201):
        return None
    refused(status, problem or {}, data)
    return STATUS_REFUSED


def OnIncomingCStore(receivedDicom):
    """C-STORE from a modality: refused with a DIMSE failure status it sees.

    (ReceivedInstanceAction.DISCARD, below, also drops an instance, but
    Orthanc 1.10 answers the C-STORE with Success then: measured. An
    exception in the received-instance callback makes Orthanc keep the
    instance, hence decide never raises.)"""
    status = decide(receivedDicom.GetInstanceData())
    return 0 if status is None else status


def OnReceivedInstance(receivedDicom, origin):
    """Every other way in (REST upload, STOW-RS, WebDAV): kept or dropped."""
    if origin == orthanc.InstanceOrigin.DICOM_PROTOCOL:
        return KEEP  # decided, on these very bytes, by OnIncomingCStore
    if decide(receivedDicom) is None:
        return KEEP
    return (orthanc.ReceivedInstanceAction.DISCARD, None)


# An outbox file younger than this is left for the next pass: Orthanc
# stores the instance only after the callback that wrote the file returns,
# and a refused one must be found in Orthanc to be taken out again.
SETTLE = 5
# A refused file whose instance is not (yet) in Orthanc is retried for
# this long before it is given up (it is quarantined all the same).
GIVE_UP = 600


def drain_once():
    """Posts every settled file of the outbox; returns how many are left."""
    left = 0
    for name in sorted(os.listdir(OUTBOX)):
        if not name.endswith(".dcm"):
            continue
        path = os.path.join(OUTBOX, name)
        try:
            if _drain_file(path):
                os.remove(path)
            else:
                left += 1
        except Exception as e:  # one file's trouble does not stall the rest
            orthanc.LogError("dicomseal outbox, %s: %s" % (name, e))
            left += 1
    return left


def _drain_file(path):
    """True once the file is done with: attested, or refused and out of Orthanc."""
    age = time.time() - os.path.getmtime(path)
    if age < SETTLE:
        return False
    with open(path, "rb") as f:
        data = f.read()
    try:
        status, problem = attest(data)
    except Unreachable:
        return False
    if status in (200, 201):
        orthanc.LogInfo("dicomseal attested an instance from the outbox")
        return True
    # Kept while dicomseal was away, refused now: out of Orthanc.
    refused(status, problem or {}, data)
    uid = json.loads(orthanc.CreateDicomInstance(data).GetInstanceSimplifiedJson()).get("SOPInstanceUID", "")
    found = [f for f in (json.loads(orthanc.RestApiPost("/tools/lookup", uid)) if uid else []) if f.get("Type") == "Instance"]
    for f in found:
        # Only these very bytes: Orthanc may hold an attested instance
        # under the same UID (it does not overwrite), and then never
        # stored these.
        instance = "/instances/" + f["ID"]
        if orthanc.RestApiGet(instance + "/file") == data:
            orthanc.RestApiDelete(instance)
    # None found: not stored yet, or never: retried until GIVE_UP.
    return bool(found) or age > GIVE_UP


def _drain_forever():
    while True:
        try:
            drain_once()
        except Exception as e:  # keep draining whatever one pass met
            orthanc.LogError("dicomseal outbox: %s" % e)
        time.sleep(2)


if not URL or not TOKEN_FILE:
    raise RuntimeError("dicomseal_gate: DICOMSEAL_URL and DICOMSEAL_TOKEN_FILE must be set")
if MODE not in ("refuse", "outbox"):
    raise RuntimeError("dicomseal_gate: DICOMSEAL_UNREACHABLE must be refuse or outbox, not %r" % MODE)
if not URL.startswith(("http://", "https://")):
    raise RuntimeError("dicomseal_gate: DICOMSEAL_URL must be an http(s) URL, not %r" % URL)
if not TIMEOUT > 0:
    raise RuntimeError("dicomseal_gate: DICOMSEAL_TIMEOUT must be a positive number of seconds")
_token()  # fail at start, not on the first instance
if MODE == "outbox" and not OUTBOX:
    raise RuntimeError("dicomseal_gate: DICOMSEAL_OUTBOX_DIR must be set in outbox mode")
if OUTBOX:
    # Drained in either mode: files left by an outbox run are attested
    # (or taken out of Orthanc) after a switch to refuse too.
    os.makedirs(OUTBOX, exist_ok=True)
    threading.Thread(target=_drain_forever, name="dicomseal-outbox", daemon=True).start()

orthanc.RegisterIncomingCStoreInstanceFilter(OnIncomingCStore)
orthanc.RegisterReceivedInstanceCallback(OnReceivedInstance)
orthanc.LogWarning("dicomseal_gate: Orthanc keeps only what %s attests (unreachable: %s)" % (URL, MODE))
