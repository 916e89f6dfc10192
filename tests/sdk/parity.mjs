// GrowthBook's JavaScript SDK against a running offerlab (run by
// tests/growthbook_sdk.rs, which starts the server and passes its URL and
// a client key). Exits non-zero with a message on the first disagreement.
//
// 1. For 20,000 visitors (ASCII, accented, CJK and emoji ids; every
//    targeting case), evalFeature on the /api/features payload gives the
//    same variant and payload as POST /v1/assign, for every test: running
//    (targeting, namespaces, coverage, another hash attribute), paused,
//    concluded; a draft is absent from both.
// 2. The documented trackingCallback posts each exposure of 1,000 visitors
//    to /v1/exposures: every one is accepted (no 409), and the report
//    counts exactly the visitors tracked.
import { GrowthBook } from "@growthbook/growthbook";
import { isDeepStrictEqual } from "node:util";

const [url, clientKey] = process.argv.slice(2);
const fail = (message) => {
  console.error(`FAIL: ${message}`);
  process.exit(1);
};

const response = await fetch(`${url}/api/features/${clientKey}`);
if (response.status !== 200) fail(`GET /api/features answered ${response.status}`);
const payload = await response.json();

// Deterministic visitors: ids in several scripts, attributes in every combination.
const prefixes = ["v", "visité", "Zoë-ß", "顧客", "客户", "🛒", "👩‍💻x", "e\u0301"];
const devices = ["mobile", "desktop", undefined];
const countries = ["DE", "AT", "FR", undefined];
function visitor(i) {
  const attributes = { visitor_id: `${prefixes[i % prefixes.length]}-${i}` };
  const device = devices[i % 3];
  const country = countries[Math.floor(i / 3) % 4];
  if (device) attributes.device = device;
  if (country) attributes.country = country;
  if (i % 5 < 3) attributes.account_id = `acct-${(i * 7919) % 100003}`;
  return attributes;
}

async function assign(attributes) {
  const { visitor_id, ...rest } = attributes;
  const r = await fetch(`${url}/v1/assign`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ visitor_id, attributes: rest }),
  });
  if (r.status !== 200) fail(`/v1/assign answered ${r.status}: ${await r.text()}`);
  return (await r.json()).assignments;
}

async function pool(count, width, work) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

const testIds = (await (await fetch(`${url}/api/v1/experiments`)).json()).experiments.map((e) => e.id);
const drafts = new Set(
  (await (await fetch(`${url}/api/v1/experiments`)).json()).experiments
    .filter((e) => e.status === "draft")
    .map((e) => e.id),
);
for (const id of testIds) {
  if (drafts.has(id) === id in payload.features) fail(`test ${id}: draft ${drafts.has(id)}, in payload ${id in payload.features}`);
}

const seen = { inExperiment: 0, notInExperiment: 0, forced: 0 };
await pool(20000, 32, async (i) => {
  const attributes = visitor(i);
  const gb = new GrowthBook({ attributes });
  gb.initSync({ payload });
  const assigned = new Map((await assign(attributes)).map((a) => [a.experiment, a]));
  for (const id of testIds) {
    const result = gb.evalFeature(id);
    const ours = assigned.get(id);
    if (drafts.has(id)) {
      if (ours || result.source !== "unknownFeature") fail(`draft ${id} is visible for ${attributes.visitor_id}`);
      continue;
    }
    if (!ours) fail(`${id} missing from /v1/assign for ${attributes.visitor_id}`);
    const inExperiment = result.source === "experiment" && result.experimentResult.inExperiment;
    if (inExperiment !== ours.in_experiment) {
      fail(`${id}, visitor ${JSON.stringify(attributes)}: SDK in experiment ${inExperiment}, offerlab ${ours.in_experiment}`);
    }
    if (inExperiment && result.experimentResult.key !== ours.variant) {
      fail(`${id}, visitor ${JSON.stringify(attributes)}: SDK variant ${result.experimentResult.key}, offerlab ${ours.variant}`);
    }
    if (!isDeepStrictEqual(result.value, ours.payload)) {
      fail(`${id}, visitor ${JSON.stringify(attributes)}: SDK payload ${JSON.stringify(result.value)}, offerlab ${JSON.stringify(ours.payload)}`);
    }
    if (result.source === "force") seen.forced++;
    else if (inExperiment) seen.inExperiment++;
    else seen.notInExperiment++;
  }
});
if (!seen.inExperiment || !seen.notInExperiment || !seen.forced) fail(`a case never occurred: ${JSON.stringify(seen)}`);
console.log(`parity: 20000 visitors x ${testIds.length} tests agree (${JSON.stringify(seen)})`);

// The trackingCallback the README documents: the visitor's id and
// attributes (offerlab checks targeting and the hash again), the test's
// key, and the variant's key from the rule's meta.
const tracked = new Map(); // "test/variant" -> visitors
const posts = [];
function trackTo(attributes) {
  return (experiment, result) => {
    const body = { visitor_id: attributes.visitor_id, experiment: experiment.key, variant: result.key, attributes };
    posts.push(
      fetch(`${url}/v1/exposures`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then(async (r) => ({ status: r.status, body: await r.json(), sent: body })),
    );
    const k = `${experiment.key}/${result.key}`;
    tracked.set(k, (tracked.get(k) ?? 0) + 1);
  };
}
for (let i = 0; i < 1000; i++) {
  const attributes = visitor(100000 + i);
  const gb = new GrowthBook({ attributes, trackingCallback: trackTo(attributes) });
  gb.initSync({ payload });
  for (const id of Object.keys(payload.features)) gb.evalFeature(id);
}
const answers = await Promise.all(posts);
for (const a of answers) {
  if (a.status !== 200 || a.body.status !== "accepted") fail(`exposure ${JSON.stringify(a.sent)}: ${a.status} ${JSON.stringify(a.body)}`);
}
if (answers.length < 500) fail(`only ${answers.length} exposures tracked`);
for (const id of new Set([...tracked.keys()].map((k) => k.split("/")[0]))) {
  const report = await (await fetch(`${url}/api/v1/experiments/${id}/report`)).json();
  for (const arm of report.metrics[0].arms) {
    const want = tracked.get(`${id}/${arm.variant}`) ?? 0;
    if (arm.visitors !== want) fail(`report of ${id}: ${arm.visitors} visitors in ${arm.variant}, tracked ${want}`);
  }
}
console.log(`tracking: ${answers.length} exposures from the SDK's trackingCallback accepted and in the reports`);
