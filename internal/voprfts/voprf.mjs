// An independent RFC 9497 implementation for interoperability tests:
// Cloudflare's voprf-ts on @noble/curves' ristretto255, driven by the Go
// helper in this directory through one JSON object per line on stdin and
// stdout. It is test code; nothing here runs in veilmatch.
//
// Requests:
//   {"op":"client","public_key":HEX,"inputs":[HEX...]}
//       -> {"blinded":[HEX...]}, then reads {"evaluated":[HEX...],"proof":HEX}
//       -> {"outputs":[HEX...]} or {"error":"..."}
//   {"op":"server","private_key":HEX,"blinded":[HEX...]}
//       -> {"evaluated":[HEX...],"proof":HEX}
import { createInterface } from 'node:readline';
import { Oprf, VOPRFClient, VOPRFServer, Evaluation, EvaluationRequest, DLEQProof } from '@cloudflare/voprf-ts';
import { CryptoNoble } from '@cloudflare/voprf-ts/crypto-noble';

Oprf.Crypto = CryptoNoble;
const suite = Oprf.Suite.RISTRETTO255_SHA512;
const group = Oprf.getGroup(suite);

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
const send = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function next() {
  const { value, done } = await lines.next();
  if (done) throw new Error('stdin closed');
  return JSON.parse(value);
}

async function client(req) {
  const c = new VOPRFClient(suite, unhex(req.public_key));
  const [fin, evalReq] = await c.blind(req.inputs.map(unhex));
  send({ blinded: evalReq.blinded.map((e) => hex(e.serialize())) });
  const ans = await next();
  try {
    const ev = new Evaluation(
      Oprf.Mode.VOPRF,
      ans.evaluated.map((e) => group.desElt(unhex(e))),
      DLEQProof.deserialize(group.id, unhex(ans.proof)),
    );
    const outs = await c.finalize(fin, ev);
    send({ outputs: outs.map(hex) });
  } catch (e) {
    send({ error: String(e && e.message ? e.message : e) });
  }
}

async function server(req) {
  const s = new VOPRFServer(suite, unhex(req.private_key));
  const ev = await s.blindEvaluate(new EvaluationRequest(req.blinded.map((e) => group.desElt(unhex(e)))));
  send({ evaluated: ev.evaluated.map((e) => hex(e.serialize())), proof: hex(ev.proof.serialize()) });
}

for (;;) {
  let req;
  try {
    req = await next();
  } catch {
    break;
  }
  if (req.op === 'client') await client(req);
  else if (req.op === 'server') await server(req);
  else send({ error: 'unknown op ' + req.op });
}
