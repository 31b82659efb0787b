// replay.mjs replays the DICOMweb requests OHIF Viewer v3 makes to open a
// study, with the client OHIF uses (dicomweb-client, the version OHIF v3
// pins), and prints what the viewer would have parsed as JSON on stdout.
//
//   DICOMWEB_TOKEN=secret node replay.mjs BASE_URL [--study UID]
//
// BASE_URL is the DICOMweb root (…/dicomweb, or Orthanc's …/dicom-web).
// DICOMWEB_TOKEN, when set, is sent as "Authorization: Bearer …" on every
// request, as OHIF's user authentication service does; DICOMWEB_AUTHORIZATION
// is sent as the whole header value instead (e.g. "Basic …" for Orthanc's
// own server). Both come from the environment, not the arguments: other
// users can read a process's arguments. --study opens that study from the
// work list instead of the first.
//
// Each frame is summarised by its length and SHA-256, so the caller can
// compare it with the Pixel Data of the file it stored.
//
// The sequence, from OHIF's extensions/default/src/DicomWebDataSource
// (index.js, qido.js, wado/retrieveMetadataLoaderAsync.js) with the
// default data-source configuration (enableStudyLazyLoad, no acceptHeader):
//
//  1. work list: searchForStudies on the QIDO client (headers: only
//     Authorization) with queryParams {limit: 101, offset: 0,
//     fuzzymatching: false, includefield: '00081030,00080060'} (mapParams);
//  2. the study's row expanded: searchForSeries with includefield
//     '0008103E,00080021' (seriesInStudy);
//  3. the viewer opens it: on the WADO client, whose headers are
//     Authorization and Accept: ['multipart/related;
//     type="application/octet-stream"; transfer-syntax="*"']
//     (generateWadoHeader), searchForSeries({studyInstanceUID}) and then
//     retrieveSeriesMetadata for every series, in parallel. XMLHttpRequest
//     joins that Accept to the one the call sets itself, so the server
//     sees "application/dicom+json, multipart/related; …";
//  4. frame 1 of the series' first instance (lowest Instance Number):
//     retrieveInstanceFrames with the Accept
//     'multipart/related; type="application/octet-stream"; transfer-syntax=*',
//     then the same frame with the exact Accept the viewer's pixel loader
//     (cornerstone's dicom-image-loader, wadors) sends:
//     'multipart/related; type=application/octet-stream; transfer-syntax=*'.
//
// Every request is recorded (URL, Accept as sent, status, Content-Type).
// Any failure exits 1 with the reason on stderr.
import { createHash } from 'node:crypto';
import XMLHttpRequest from 'xhr2';
import dicomweb from 'dicomweb-client';

// dicomweb-client is written for browsers: it uses the global XMLHttpRequest.
globalThis.XMLHttpRequest = XMLHttpRequest;
const { api } = dicomweb;

const FRAME_ACCEPT_DICOMWEB_CLIENT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';
const FRAME_ACCEPT_CORNERSTONE = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
// OHIF's generateAcceptHeader() without configuration: an array, as OHIF sets it.
const OHIF_WADO_ACCEPT = ['multipart/related; type="application/octet-stream"; transfer-syntax="*"'];

function usage(msg) {
  process.stderr.write(`${msg}\nusage: DICOMWEB_TOKEN=… node replay.mjs BASE_URL [--study UID]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let baseURL = '';
let wantStudy = '';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--study') {
    wantStudy = args[++i] || usage('--study needs a UID');
  } else if (!baseURL && !args[i].startsWith('--')) {
    baseURL = args[i];
  } else {
    usage(`unexpected argument ${args[i]}`);
  }
}
if (!/^https?:\/\//.test(baseURL)) usage('BASE_URL must be an http(s) URL');
baseURL = baseURL.replace(/\/+$/, '');
const authorization = process.env.DICOMWEB_AUTHORIZATION
  || (process.env.DICOMWEB_TOKEN ? `Bearer ${process.env.DICOMWEB_TOKEN}` : '');

// authorizationHeader is userAuthenticationService.getAuthorizationHeader().
function authorizationHeader() {
  return authorization ? { Authorization: authorization } : {};
}

const requests = [];
let step = '';

// recordHook is a dicomweb-client request hook: it notes what each request
// sent and what it answered, and keeps the raw body of multipart answers
// (the client hands back only the parts' bytes, not their headers).
function recordHook(request, metadata) {
  const entry = { step, method: metadata.method.toUpperCase(), url: metadata.url };
  requests.push(entry);
  const onreadystatechange = request.onreadystatechange;
  request.onreadystatechange = () => {
    if (request.readyState === 4) {
      // xhr2 keeps the headers it sends, combined as a browser does.
      const sent = request._headers || {};
      const accept = Object.keys(sent).find(k => k.toLowerCase() === 'accept');
      entry.accept = accept ? sent[accept] : null;
      entry.authorization = Object.keys(sent).some(k => k.toLowerCase() === 'authorization');
      entry.status = request.status;
      entry.contentType = request.getResponseHeader('Content-Type');
      if (entry.contentType && entry.contentType.includes('multipart') && request.response instanceof ArrayBuffer) {
        Object.defineProperty(entry, 'raw', { value: request.response, enumerable: false });
      }
    }
    onreadystatechange();
  };
  return request;
}

function newClient(headers) {
  // errorInterceptor as OHIF's, minus its UI: the rejection carries the status.
  return new api.DICOMwebClient({ url: baseURL, headers, requestHooks: [recordHook], verbose: false });
}

// tagValue returns the first value of a DICOM JSON attribute.
function tagValue(dataset, tag) {
  const v = dataset && dataset[tag] && dataset[tag].Value;
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const x = v[0];
  return x && typeof x === 'object' && 'Alphabetic' in x ? x.Alphabetic : x;
}

function fail(msg) {
  throw new Error(`${step}: ${msg}`);
}

// partHeaders returns the header lines of each part of a multipart body.
function partHeaders(raw, contentType) {
  const m = /boundary="?([^";]+)"?/i.exec(contentType || '');
  if (!m) return [];
  const text = Buffer.from(raw).toString('latin1');
  const out = [];
  const delim = `--${m[1]}`;
  let at = text.indexOf(delim);
  while (at !== -1) {
    const start = at + delim.length;
    if (text.startsWith('--', start)) break;
    const end = text.indexOf('\r\n\r\n', start);
    if (end === -1) break;
    const headers = {};
    for (const line of text.slice(start, end).split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    out.push(headers);
    at = text.indexOf(delim, end);
  }
  return out;
}

function transferSyntaxOf(contentType) {
  const m = /transfer-syntax="?([^";\s]+)"?/i.exec(contentType || '');
  return m ? m[1] : null;
}

// frameSummary describes one frames answer: the parts' sizes and types.
function frameSummary(parts, entry) {
  if (!Array.isArray(parts) || parts.length !== 1) fail(`want one part for one frame, got ${Array.isArray(parts) ? parts.length : typeof parts}`);
  const headers = entry && entry.raw ? partHeaders(entry.raw, entry.contentType) : [];
  const partType = headers[0] ? headers[0]['content-type'] || null : null;
  return {
    bytes: parts[0].byteLength,
    sha256: createHash('sha256').update(Buffer.from(parts[0])).digest('hex'),
    contentType: entry ? entry.contentType : null,
    partContentType: partType,
    transferSyntax: transferSyntaxOf(partType) || transferSyntaxOf(entry && entry.contentType),
  };
}

async function main() {
  // 1. The work list.
  step = 'searchForStudies';
  const qido = newClient(authorizationHeader());
  qido.headers = authorizationHeader();
  const studies = await qido.searchForStudies({
    studyInstanceUid: undefined,
    queryParams: { limit: 101, offset: 0, fuzzymatching: false, includefield: '00081030,00080060' },
  });
  if (!Array.isArray(studies)) fail(`want a JSON array, got ${typeof studies}`);
  const studyRows = studies.map(s => ({
    StudyInstanceUID: tagValue(s, '0020000D'),
    StudyDescription: tagValue(s, '00081030') || '',
    PatientName: tagValue(s, '00100010') || '',
    ModalitiesInStudy: (s['00080061'] && s['00080061'].Value) || (s['00080060'] && s['00080060'].Value) || [],
    NumberOfStudyRelatedInstances: Number(tagValue(s, '00201208')) || 0,
  }));
  if (studyRows.length === 0) fail('no studies');
  if (studyRows.some(r => !r.StudyInstanceUID)) fail('a study without StudyInstanceUID (0020000D)');
  const study = wantStudy || studyRows[0].StudyInstanceUID;
  if (!studyRows.some(r => r.StudyInstanceUID === study)) fail(`study ${study} is not in the work list`);

  // 2. The study's row, expanded.
  step = 'searchForSeries';
  qido.headers = authorizationHeader();
  const seriesRows = await qido.searchForSeries({
    studyInstanceUID: study,
    queryParams: { includefield: '0008103E,00080021' },
  });
  if (!Array.isArray(seriesRows) || seriesRows.length === 0) fail('no series');
  const series = seriesRows.map(s => ({
    SeriesInstanceUID: tagValue(s, '0020000E'),
    Modality: tagValue(s, '00080060') || '',
    SeriesNumber: tagValue(s, '00200011'),
    NumberOfSeriesRelatedInstances: Number(tagValue(s, '00201209')) || 0,
  }));
  if (series.some(s => !s.SeriesInstanceUID)) fail('a series without SeriesInstanceUID (0020000E)');

  // 3. The viewer: series again on the WADO client, then each one's metadata.
  step = 'viewer searchForSeries';
  const wado = newClient({});
  wado.headers = { ...authorizationHeader(), Accept: OHIF_WADO_ACCEPT };
  const viewerSeries = await wado.searchForSeries({ studyInstanceUID: study });
  if (!Array.isArray(viewerSeries) || viewerSeries.length !== seriesRows.length) {
    fail(`the viewer's series search found ${Array.isArray(viewerSeries) ? viewerSeries.length : typeof viewerSeries}, the work list ${seriesRows.length}`);
  }
  step = 'retrieveSeriesMetadata';
  const metadata = await Promise.all(viewerSeries.map(s => wado.retrieveSeriesMetadata({
    studyInstanceUID: study,
    seriesInstanceUID: tagValue(s, '0020000E'),
  })));
  const metadataSummary = metadata.map((instances, i) => {
    if (!Array.isArray(instances) || instances.length === 0) fail(`series ${tagValue(viewerSeries[i], '0020000E')}: no instance metadata`);
    for (const inst of instances) {
      if (!tagValue(inst, '00080018')) fail('instance metadata without SOPInstanceUID (00080018)');
      if (tagValue(inst, '0020000D') !== study) fail(`instance ${tagValue(inst, '00080018')} is in study ${tagValue(inst, '0020000D')}`);
    }
    return {
      SeriesInstanceUID: tagValue(viewerSeries[i], '0020000E'),
      instances: instances.length,
      SOPInstanceUIDs: instances.map(inst => tagValue(inst, '00080018')),
    };
  });
  const metadataInstances = metadataSummary.reduce((n, s) => n + s.instances, 0);

  // 4. Frame 1 of the first series' first instance.
  const instances = [...metadata[0]].sort((a, b) => (Number(tagValue(a, '00200013')) || 0) - (Number(tagValue(b, '00200013')) || 0));
  const first = instances[0];
  const frameRef = {
    studyInstanceUID: study,
    seriesInstanceUID: tagValue(viewerSeries[0], '0020000E'),
    sopInstanceUID: tagValue(first, '00080018'),
  };
  const image = {
    SOPInstanceUID: frameRef.sopInstanceUID,
    SeriesInstanceUID: frameRef.seriesInstanceUID,
    Rows: tagValue(first, '00280010'),
    Columns: tagValue(first, '00280011'),
    SamplesPerPixel: tagValue(first, '00280002'),
    BitsAllocated: tagValue(first, '00280100'),
    NumberOfFrames: Number(tagValue(first, '00280008')) || 1,
    TransferSyntaxUID: tagValue(first, '00020010') || null,
  };
  if (!image.Rows || !image.Columns) fail(`instance ${image.SOPInstanceUID} has no Rows/Columns in its metadata`);

  step = 'retrieveInstanceFrames';
  const pixels = newClient(authorizationHeader());
  const parts = await pixels.retrieveInstanceFrames({
    ...frameRef,
    frameNumbers: [1],
    mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }],
  });
  const frame = frameSummary(parts, requests[requests.length - 1]);
  if (requests[requests.length - 1].accept !== FRAME_ACCEPT_DICOMWEB_CLIENT) {
    fail(`sent Accept ${requests[requests.length - 1].accept}, want ${FRAME_ACCEPT_DICOMWEB_CLIENT}`);
  }

  step = 'cornerstone frame';
  const url = `${baseURL}/studies/${frameRef.studyInstanceUID}/series/${frameRef.seriesInstanceUID}/instances/${frameRef.sopInstanceUID}/frames/1`;
  const cparts = await pixels._httpGet(url, { Accept: FRAME_ACCEPT_CORNERSTONE }, 'arraybuffer');
  const cornerstoneFrame = frameSummary(cparts, requests[requests.length - 1]);
  if (Buffer.compare(Buffer.from(parts[0]), Buffer.from(cparts[0])) !== 0) fail('the two frame requests answered different bytes');

  return {
    baseURL,
    studies: studyRows,
    study,
    series,
    seriesCount: series.length,
    metadata: metadataSummary,
    metadataInstances,
    image,
    frame,
    cornerstoneFrame,
    requests,
  };
}

main().then(
  summary => process.stdout.write(JSON.stringify(summary, null, 2) + '\n'),
  err => {
    const status = err && err.status !== undefined ? ` (HTTP ${err.status})` : '';
    process.stderr.write(`replay failed${status}: ${err && err.message ? err.message : err}\n`);
    const last = requests[requests.length - 1];
    if (last) process.stderr.write(`last request: ${JSON.stringify(last)}\n`);
    if (err && err.response) {
      const body = typeof err.response === 'string' ? err.response
        : err.response instanceof ArrayBuffer ? Buffer.from(err.response).toString('utf8') : JSON.stringify(err.response);
      process.stderr.write(`answer: ${String(body).slice(0, 500)}\n`);
    }
    process.exit(1);
  },
);
