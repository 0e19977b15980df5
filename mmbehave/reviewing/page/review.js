// The review page: one clip at a time, in the queue's order. Every decision is POSTed at once and the server's
// answer (the clip's decisions as the file now holds them) is what the page shows, so a reload or a second tab
// sees the same.
"use strict";
const $ = (id) => document.getElementById(id);
let state = null, here = 0, headAt = 0;

async function load() {
  state = await (await fetch("/api/state")).json();
  $("table").textContent = state.table;
  $("reviewer").value = localStorage.getItem("reviewer") || state.reviewer;
  const first = state.clips.findIndex((clip) => !done(clip));
  show(first === -1 ? 0 : first);
}

function decisionsOf(clip) { return state.decisions[clip.path] || {}; }
function done(clip) { const d = decisionsOf(clip); return state.heads.every((head) => head in d); }

function choicesOf(clip, head) {
  // The model's top answers first (with their probabilities), then every other class the model knows.
  const top = clip.answers[head] || [];
  const named = new Set(top.map(([name]) => name));
  return [...top, ...state.classes[head].filter((name) => !named.has(name)).map((name) => [name, null])];
}

function show(index) {
  here = Math.max(0, Math.min(index, state.clips.length - 1));
  const clip = state.clips[here];
  const d = decisionsOf(clip);
  headAt = Math.max(0, state.heads.findIndex((head) => !(head in d)));
  $("clip-name").textContent = `${here + 1}. ${clip.name}`;
  $("context").textContent = Object.entries(clip.context).map(([k, v]) => `${k}: ${v}`).join(" · ");
  media(clip);
  render();
}

function media(clip) {
  const base = `/media/${clip.index}/`;
  const video = $("video"), audio = $("audio");
  $("video-note").textContent = ""; $("audio-note").textContent = "";
  video.onerror = () => { $("video-note").textContent = "no video to play (an audio recording, or unreadable)"; };
  audio.onerror = () => { $("audio-note").textContent = "no sound in this clip"; };
  video.src = base + "video"; audio.src = base + "audio";
  $("spectrogram").src = base + "spectrogram"; $("frames").src = base + "frames";
  video.play().catch(() => {});
}

function render() {
  const clip = state.clips[here];
  const d = decisionsOf(clip);
  $("status").textContent = done(clip) ? "done" : "to review";
  $("status").className = done(clip) ? "decided" : "";
  const reviewed = state.clips.filter(done).length;
  $("progress").textContent = `${reviewed} of ${state.clips.length} clips reviewed`;
  const heads = $("heads");
  heads.replaceChildren();
  state.heads.forEach((head, h) => {
    const box = document.createElement("div");
    box.className = "head" + (h === headAt ? " current" : "");
    box.dataset.head = head;
    const title = document.createElement("h3");
    const said = d[head];
    title.textContent = head + (said ? ` — ${said.decision}${said.answer ? ": " + said.answer : ""}` : "");
    if (said) title.className = "decided";
    box.append(title);
    choicesOf(clip, head).forEach(([name, prob], i) => {
      const button = document.createElement("button");
      button.className = "choice" + (said && said.answer === name ? " chosen" : "");
      const bar = document.createElement("div");
      bar.className = "bar"; bar.style.width = `${Math.round((prob || 0) * 100)}%`;
      const label = document.createElement("span");
      label.textContent = `${i < 9 ? i + 1 + ". " : ""}${name}${prob === null ? "" : ` ${prob.toFixed(3)}`}`;
      button.append(bar, label);
      button.onclick = () => { headAt = h; decide(i === 0 && prob !== null ? "accept" : "relabel", name); };
      box.append(button);
    });
    heads.append(box);
  });
  const list = $("queue");
  list.replaceChildren(...state.clips.map((c, i) => {
    const item = document.createElement("li");
    item.textContent = c.name;
    item.className = (done(c) ? "done" : "") + (i === here ? " here" : "");
    item.dataset.index = i;
    item.onclick = () => show(i);
    return item;
  }));
}

async function decide(decision, answer = "") {
  const clip = state.clips[here], head = state.heads[headAt];
  localStorage.setItem("reviewer", $("reviewer").value);
  const reply = await fetch("/api/decision", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({index: clip.index, head, decision, answer, reviewer: $("reviewer").value}),
  });
  const body = await reply.json();
  if (!reply.ok) { $("error").textContent = body.error; return; }
  $("error").textContent = "";
  state.decisions[clip.path] = body.decisions;
  const d = decisionsOf(clip);
  const open = state.heads.findIndex((h) => !(h in d));
  if (open === -1) {  // the clip is done: on to the next one still to review
    const next = state.clips.findIndex((c, i) => i > here && !done(c));
    show(next === -1 ? here : next);
  } else { headAt = open; render(); }
}

function pick(number) {
  const choices = choicesOf(state.clips[here], state.heads[headAt]);
  if (number > choices.length) return;
  const [name, prob] = choices[number - 1];
  decide(number === 1 && prob !== null ? "accept" : "relabel", name);
}

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  if (key === "a" || key === "Enter") decide("accept");
  else if (key === "u") decide("unsure");
  else if (key === "e") decide("empty");
  else if (key === "n" || key === "ArrowRight") show(here + 1);
  else if (key === "p" || key === "ArrowLeft") show(here - 1);
  else if (key === "h") { headAt = (headAt + 1) % state.heads.length; render(); }
  else if (key === "s") { const audio = $("audio"); audio.currentTime = 0; audio.play().catch(() => {}); }
  else if (/^[1-9]$/.test(key)) pick(Number(key));
  else return;
  event.preventDefault();
});
$("accept").onclick = () => decide("accept");
$("unsure").onclick = () => decide("unsure");
$("empty").onclick = () => decide("empty");
$("next").onclick = () => show(here + 1);
$("prev").onclick = () => show(here - 1);
load();
