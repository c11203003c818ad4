// The page of `seq2seq serve`: asks POST /translate for every run's translation of the text, with
// attention, and shows each run's translation, its tokens shaded by their probability, and a
// heatmap of where each output token looked. Everything shown is set as text (never as HTML).
"use strict";

const EXAMPLES = {
  cat: "Die Katze, die auf der Matte neben dem Hund saß, sprang.",
  // the first four sentences of the Multi30k test set, joined as `seq2seq eval --concat 4` joins them
  long: "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt. Ein Boston Terrier läuft über saftig-grünes " +
        "Gras vor einem weißen Zaun. Ein Mädchen in einem Karateanzug bricht ein Brett mit einem Tritt. Fünf " +
        "Leute in Winterjacken und mit Helmen stehen im Schnee mit Schneemobilen im Hintergrund.",
};
const SHADE = [11, 87, 208];  // the colour of certainty: a token or weight of 1 is this, 0 is white
const byName = {};  // run name -> what GET /runs says of it

const $ = (id) => document.getElementById(id);

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);  // strings become text nodes
  return node;
}

function status(message, error = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", error);
}

function shade(p) {
  return `rgba(${SHADE.join(",")},${p.toFixed(3)})`;
}

function piece(token) {
  return token === "</s>" ? "EOS" : token.replaceAll("\u2581", " ");
}

async function loadRuns() {
  const response = await fetch("/runs");
  const body = await response.json();
  for (const run of body.runs) byName[run.name] = run;
  $("beam").max = body.max_beam;
  $("served").textContent = "Runs: " + body.runs.map((run) => {
    const bleu = run.test_bleu == null ? "" : `, test BLEU ${run.test_bleu.toFixed(1)}`;
    return `${run.name} (${describe(run)}, step ${run.step.toLocaleString("en")}${bleu})`;
  }).join("; ");
}

function describe(run) {
  return run.settings.attention ? `${run.model}, attention ${run.settings.attention}` : run.model;
}

async function translate() {
  const text = $("text").value;
  if (!text.trim()) {
    status("Type a German sentence first.", true);
    return;
  }
  const greedy = document.querySelector("input[name=search]:checked").value === "greedy";
  const beam = greedy ? 1 : Number($("beam").value);
  status("Translating\u2026");
  $("go").disabled = true;
  try {
    const response = await fetch("/translate", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({text, beam, attention: true}),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    $("results").replaceChildren(...body.runs.map(runCard));
    status("");
  } catch (error) {
    status(`Error: ${error.message}`, true);
  } finally {
    $("go").disabled = false;
  }
}

function runCard(answer) {
  const run = byName[answer.run];
  const card = el("article", "run");
  card.dataset.run = answer.run;
  const search = answer.beam === 1 ? "greedy" : `beam ${answer.beam}`;
  card.append(el("h2", "", answer.run),
              el("p", "meta", `${run ? describe(run) : answer.model} \u00b7 ${search} \u00b7 ${answer.seconds.toFixed(2)} s`));
  const sentences = answer.sentences.filter((s) => s.tokens.length);
  if (sentences.some((s) => s.attention === null)) {
    card.append(el("p", "note", `${answer.model} has no attention: its decoder sees only the source's final state, ` +
                                "the whole sentence squeezed into one vector."));
  }
  for (const sentence of sentences) {
    card.append(el("p", "translation", sentence.translation), tokens(sentence));
    if (sentence.cut) card.append(el("p", "note", "The source was longer than the model's positions: it was cut to fit."));
    if (sentence.attention) card.append(heatmap(sentence, run));
  }
  return card;
}

function tokens(sentence) {
  const line = el("p", "tokens");
  sentence.tokens.forEach((token, i) => {
    const p = Math.exp(sentence.logprobs[i]);
    const span = el("span", token === "</s>" ? "token eos" : "token", piece(token));
    span.style.backgroundColor = shade(p);
    if (p > 0.55) span.style.color = "#fff";
    span.title = `p = ${p.toFixed(3)}`;
    line.append(span);
  });
  return line;
}

function heatmap(sentence, run) {
  const source = sentence.source_tokens.map(piece), target = sentence.tokens.map(piece);
  const cell = Math.max(12, Math.min(22, Math.floor(640 / source.length)));
  const canvas = el("canvas", "heatmap");
  const ctx = canvas.getContext("2d");
  const font = `${Math.max(10, cell - 8)}px system-ui, sans-serif`;
  ctx.font = font;
  const width = (labels) => Math.max(...labels.map((label) => ctx.measureText(label.trim()).width));
  const left = width(target) + 8, top = width(source) * 0.8 + 12;
  const w = left + cell * source.length + 4, h = top + cell * target.length + 4;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.ceil(w * ratio);
  canvas.height = Math.ceil(h * ratio);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  ctx.scale(ratio, ratio);
  ctx.fillStyle = "#fff";  // the cells' weights shade white
  ctx.fillRect(0, 0, w, h);
  ctx.font = font;
  ctx.fillStyle = "#1f2328";
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  target.forEach((label, i) => ctx.fillText(label.trim(), left - 6, top + cell * (i + 0.5)));
  source.forEach((label, j) => {
    ctx.save();
    ctx.translate(left + cell * (j + 0.5), top - 6);
    ctx.rotate(-Math.PI / 3.5);
    ctx.textAlign = "left";
    ctx.fillText(label.trim(), 0, 0);
    ctx.restore();
  });
  sentence.attention.forEach((row, i) => row.forEach((weight, j) => {
    ctx.fillStyle = shade(weight);
    ctx.fillRect(left + cell * j, top + cell * i, cell - 1, cell - 1);
  }));
  ctx.strokeStyle = "#d0d7de";
  ctx.strokeRect(left - 0.5, top - 0.5, cell * source.length, cell * target.length);
  Object.assign(canvas.dataset, {left, top, cell});  // where the cells lie, for tests
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `attention of ${sentence.translation}`);
  const n = run ? run.attention_layers : null;
  const layers = !n ? "" : `, ${n === 1 ? "the decoder layer's" : `the last of ${n} decoder layers`}, mean over heads`;
  return el("figure", "heatmap-wrap", canvas,
            el("figcaption", "caption", `Attention: row i is where output token i looked${layers}.`));
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  translate();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    translate();
  }
});
for (const button of document.querySelectorAll("[data-example]")) {
  button.addEventListener("click", () => {
    $("text").value = EXAMPLES[button.dataset.example];
    $("text").focus();
  });
}
$("beam").addEventListener("focus", () => {
  document.querySelector("input[name=search][value=beam]").checked = true;
});
loadRuns().catch((error) => status(`Error: cannot list the runs (${error.message})`, true));
