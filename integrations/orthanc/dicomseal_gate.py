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
    # Read at each request: a rotated token file takes effect at once.
    with open(TOKEN_FILE) as f:
        return f.read().strip()


_context = ssl.create_default_context(cafile=CA_FILE) if CA_FILE else None


def attest(data):
    """Posts data to dicomseal: (status, problem) for an answer, Unreachable otherwise."""
    req = urllib.request.Request(URL + "/v1/instances", data=data, method="POST", headers={
        "Content-Type": "application/dicom",
        "Authorization": "Bearer " + _token(),
    })
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT, context=_context) as resp:
            resp.read()
            return resp.status, None
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            problem = json.loads(body)
        except ValueError:
            problem = {"type": "", "detail": body[:300].decode("utf-8", "replace")}
        if e.code >= 500 or e.code == 429:
            raise Unreachable("%d %s: %s" % (e.code, problem.get("type", ""), problem.get("detail", "")))
        return e.code, problem
    except (urllib.error.URLError, OSError) as e:  # refused, reset, timed out, DNS
        raise Unreachable(str(e))


def _write_durably(folder, name, data):
    """Writes data as folder/name: temporary file, fsync, rename, fsync of the folder."""
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(folder, name))
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
        _write_durably(QUARANTINE, _name(data), data)


# DIMSE statuses a modality gets for an instance Orthanc did not keep
# (PS3.4 C.4.2.1.5): out of resources while dicomseal cannot be reached (a
# modality retries those), cannot understand once dicomseal refused it.
STATUS_UNREACHABLE = 0xA700
STATUS_REFUSED = 0xC000


def decide(data):
    """None to keep data, else the DIMSE status of its refusal."""
    try:
        status, problem = attest(data)
    except Unreachable as e:
        if MODE == "outbox":
            # Durable before Orthanc keeps it: the outbox thread attests
            # it, or takes it out of Orthanc again.
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
    exception in either callback makes Orthanc keep the instance.)"""
    status = decide(receivedDicom.GetInstanceData())
    return 0 if status is None else status


def OnReceivedInstance(receivedDicom, origin):
    """Every other way in (REST upload, STOW-RS, WebDAV): kept or dropped."""
    if origin == orthanc.InstanceOrigin.DICOM_PROTOCOL:
        return KEEP  # decided, on these very bytes, by OnIncomingCStore
    if decide(receivedDicom) is None:
        return KEEP
    return (orthanc.ReceivedInstanceAction.DISCARD, None)


def drain_once():
    """Posts every file of the outbox; returns how many are left."""
    left = 0
    for name in sorted(os.listdir(OUTBOX)):
        if not name.endswith(".dcm"):
            continue
        path = os.path.join(OUTBOX, name)
        with open(path, "rb") as f:
            data = f.read()
        try:
            status, problem = attest(data)
        except Unreachable:
            left += 1
            continue
        if status not in (200, 201):
            # Kept while dicomseal was away, refused now: out of Orthanc.
            refused(status, problem or {}, data)
            uid = json.loads(orthanc.CreateDicomInstance(data).GetInstanceSimplifiedJson()).get("SOPInstanceUID", "")
            ids = json.loads(orthanc.RestApiPost("/tools/lookup", uid)) if uid else []
            for found in ids:
                # Only these very bytes: Orthanc may hold an attested
                # instance under the same UID (it does not overwrite).
                path_ = "/instances/" + found["ID"]
                if found.get("Type") == "Instance" and orthanc.RestApiGet(path_ + "/file") == data:
                    orthanc.RestApiDelete(path_)
        else:
            orthanc.LogInfo("dicomseal attested an instance from the outbox")
        os.remove(path)
    return left


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
if MODE == "outbox":
    if not OUTBOX:
        raise RuntimeError("dicomseal_gate: DICOMSEAL_OUTBOX_DIR must be set in outbox mode")
    os.makedirs(OUTBOX, exist_ok=True)
    threading.Thread(target=_drain_forever, name="dicomseal-outbox", daemon=True).start()

orthanc.RegisterIncomingCStoreInstanceFilter(OnIncomingCStore)
orthanc.RegisterReceivedInstanceCallback(OnReceivedInstance)
orthanc.LogWarning("dicomseal_gate: Orthanc keeps only what %s attests (unreachable: %s)" % (URL, MODE))
