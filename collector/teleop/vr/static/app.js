// collector VR bridge page: streams head, controller and hand poses to the server over a
// WebSocket and shows the robot's head camera (stereo where the robot has it) plus a status
// panel, in the headset (immersive WebXR) or, where WebXR is unavailable, as a 2D page.
// Plain browser JavaScript, no build step. The protocol is documented in protocol.py.
"use strict";

const PROTOCOL_VERSION = 1;
// WebXR XRHand joint order (the server checks 25 joints in exactly this order).
const HAND_JOINTS = [
  "wrist",
  "thumb-metacarpal", "thumb-phalanx-proximal", "thumb-phalanx-distal", "thumb-tip",
  "index-finger-metacarpal", "index-finger-phalanx-proximal", "index-finger-phalanx-intermediate",
  "index-finger-phalanx-distal", "index-finger-tip",
  "middle-finger-metacarpal", "middle-finger-phalanx-proximal", "middle-finger-phalanx-intermediate",
  "middle-finger-phalanx-distal", "middle-finger-tip",
  "ring-finger-metacarpal", "ring-finger-phalanx-proximal", "ring-finger-phalanx-intermediate",
  "ring-finger-phalanx-distal", "ring-finger-tip",
  "pinky-finger-metacarpal", "pinky-finger-phalanx-proximal", "pinky-finger-phalanx-intermediate",
  "pinky-finger-phalanx-distal", "pinky-finger-tip",
];
// Pose frames are skipped while this much is still unsent: late poses are worse than none.
const MAX_BUFFERED_BYTES = 64 * 1024;
// Distance (m) and size of the head-locked camera screen in VR: ~70 degrees wide.
const SCREEN_DISTANCE = 1.0;
const SCREEN_HALF_WIDTH = 0.7;

// State the tests (and a curious operator's devtools) can read.
const state = {
  connection: "connecting", role: null, session: null, closeCode: null, closeReason: "",
  framesReceived: 0, framesDrawn: 0, lastHeader: null, eyes: {}, status: null, sessionConnected: false,
  errors: [], posesSent: 0, posesSkipped: 0, xrSupported: false, xrActive: false,
};
window.collectorVR = state;

const token = document.querySelector('meta[name="collector-token"]').content;
const params = new URLSearchParams(location.search);
const wantRole = params.get("watch") ? "watch" : "operator";
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------------------------------
// WebSocket
// ------------------------------------------------------------------------------------------

let ws = null;
let seq = 0;
let reconnectDelay = 500;

function setBadge(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  el.className = "badge" + (cls ? " " + cls : "");
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(obj));
    return true;
  }
  return false;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    state.connection = "open";
    setBadge("connection", "connected", "ok");
    reconnectDelay = 500;
    send({ type: "hello", v: PROTOCOL_VERSION, role: wantRole, client: "webxr-page/1",
           xr: state.xrSupported ? "immersive-vr" : "none", t: performance.now() });
  };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onText(JSON.parse(event.data));
    else onCameraFrame(event.data);
  };
  ws.onclose = (event) => {
    state.connection = state.connection === "refused" ? "refused" : "closed";
    state.closeCode = event.code;
    state.closeReason = event.reason;
    state.role = null;
    updateTakeButtons();
    setBadge("connection", state.connection === "refused" ? "refused" : `disconnected (${event.code})`, "bad");
    // Reconnect unless the server refused us on purpose (token, operator slot) or the token is bad.
    if (state.connection !== "refused" && event.code !== 4003 && event.code !== 1008) {
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 5000);
    }
  };
}

function onText(msg) {
  switch (msg.type) {
    case "welcome":
      state.connection = "connected";
      state.role = msg.role;
      state.session = msg.session;
      setBadge("role", msg.role === "operator" ? "operator: in control" : "watching", msg.role === "operator" ? "ok" : "");
      updateTakeButtons();
      break;
    case "refused":
      state.connection = "refused";
      state.closeReason = msg.reason;
      setBadge("role", "refused: " + msg.reason, "bad");
      break;
    case "ping":
      send({ type: "pong", id: msg.id, t: performance.now() });
      break;
    case "status":
      state.status = msg;
      renderStatus(msg);
      updateTakeButtons();
      break;
    case "error":
      state.errors.push(msg.reason);
      if (state.errors.length > 50) state.errors.shift();
      console.warn("server rejected a message:", msg.reason);
      break;
  }
}

// ------------------------------------------------------------------------------------------
// Camera frames: [uint32 LE header length][header JSON][JPEG]
// ------------------------------------------------------------------------------------------

const decoder = new TextDecoder();
const eyeImages = {};      // eye -> latest decoded ImageBitmap
const eyeDirty = {};       // eye -> not yet uploaded to the VR texture
let decoding = {};         // eye -> a decode is in flight (newer frames replace the pending one)
let pendingFrame = {};     // eye -> newest undecoded frame

function onCameraFrame(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(decoder.decode(new Uint8Array(buffer, 4, n)));
  const jpeg = new Blob([new Uint8Array(buffer, 4 + n)], { type: "image/jpeg" });
  state.framesReceived += 1;
  state.lastHeader = header;
  state.eyes[header.eye] = header.name;
  pendingFrame[header.eye] = jpeg;
  if (!decoding[header.eye]) decodeNext(header.eye);
}

async function decodeNext(eye) {
  const jpeg = pendingFrame[eye];
  if (!jpeg) return;
  pendingFrame[eye] = null;
  decoding[eye] = true;
  try {
    const bitmap = await createImageBitmap(jpeg);
    if (eyeImages[eye]) eyeImages[eye].close();
    eyeImages[eye] = bitmap;
    eyeDirty[eye] = true;
    if (!state.xrActive) draw2D();
  } catch (err) {
    console.warn("camera frame could not be decoded", err);
  } finally {
    decoding[eye] = false;
  }
  if (pendingFrame[eye]) decodeNext(eye);
}

function draw2D() {
  const canvas = $("camera");
  const ctx = canvas.getContext("2d");
  const stereo = eyeImages.left && eyeImages.right;
  const order = stereo ? ["left", "right"] : [eyeImages.mono ? "mono" : (eyeImages.left ? "left" : "right")];
  const first = eyeImages[order[0]];
  if (!first) return;
  const width = first.width * order.length;
  if (canvas.width !== width || canvas.height !== first.height) {
    canvas.width = width;
    canvas.height = first.height;
  }
  order.forEach((eye, i) => ctx.drawImage(eyeImages[eye], i * first.width, 0));
  state.framesDrawn += 1;
  $("no-camera").hidden = true;
}

// ------------------------------------------------------------------------------------------
// Status panel
// ------------------------------------------------------------------------------------------

function text(value) {
  return value === undefined || value === null || value === "" ? "–" : String(value);
}

function conditionText(cond) {
  if (!cond) return "–";
  if (typeof cond !== "object") return String(cond);
  return Object.entries(cond).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

function statusLines(msg) {
  const s = msg.session || {};
  const b = msg.bridge || {};
  const clock = b.clock || null;
  return {
    recording: s.recording === undefined ? "–" : (s.recording ? "● REC" : "idle"),
    episode: text(s.episode),
    task: text(s.instruction || s.task),
    condition: conditionText(s.next_condition),
    input: b.operator_connected ? `${Math.round(b.input_hz || 0)} Hz` + (b.rejected ? `, ${b.rejected} rejected` : "")
                                : "no operator",
    clock: clock && clock.rtt_ms != null ? `rtt ${clock.rtt_ms.toFixed(1)} ms (${clock.source})` : "–",
    warnings: msg.warnings || [],
  };
}

function renderStatus(msg) {
  const lines = statusLines(msg);
  $("st-recording").textContent = lines.recording;
  $("st-recording").className = lines.recording === "● REC" ? "rec" : "";
  $("st-episode").textContent = lines.episode;
  $("st-task").textContent = lines.task;
  $("st-condition").textContent = lines.condition;
  $("st-input").textContent = lines.input;
  $("st-clock").textContent = lines.clock;
  const list = $("st-warnings");
  list.replaceChildren(...lines.warnings.map((w) => {
    const li = document.createElement("li");
    li.textContent = w;
    return li;
  }));
  statusDirty = true;
}

// ------------------------------------------------------------------------------------------
// Episode buttons on the page (the headset uses controller buttons, mapped by the server)
// ------------------------------------------------------------------------------------------

// Take buttons work only for the operator, and only while a teleop session (collector session or
// teleop with --input vr) is publishing its status: otherwise a press would reach nobody.
function updateTakeButtons() {
  const bridge = (state.status && state.status.bridge) || {};
  state.sessionConnected = state.connection === "connected" && bridge.session_connected === true;
  const usable = state.role === "operator" && state.sessionConnected;
  document.querySelectorAll("button.op").forEach((b) => { b.disabled = !usable; });
  $("take-hint").textContent = state.role !== "operator" ? ""
    : usable ? "" : "no teleop session connected: start `collector session` (or teleop) with VR input";
}

function wireButtons() {
  const control = (action, outcome = null) => () => send({ type: "control", action, outcome });
  $("btn-start").onclick = control("start");
  $("btn-stop-ok").onclick = control("stop", "success");
  $("btn-stop-fail").onclick = control("stop", "failure");
  $("btn-discard").onclick = control("discard");
  document.querySelectorAll("button.op").forEach((b) => { b.disabled = true; });
}

// ------------------------------------------------------------------------------------------
// WebXR: pose capture
// ------------------------------------------------------------------------------------------

function poseArray(pose) {
  const p = pose.transform.position;
  const o = pose.transform.orientation;
  return [p.x, p.y, p.z, o.x, o.y, o.z, o.w];
}

function handArray(frame, hand, refSpace) {
  const joints = [];
  const radii = [];
  for (const name of HAND_JOINTS) {
    const space = hand.get(name);
    const jp = space ? frame.getJointPose(space, refSpace) : null;
    if (!jp) return null; // a partly tracked hand is reported as not tracked
    joints.push(...poseArray(jp));
    radii.push(jp.radius);
  }
  return { joints, radii };
}

// Some runtimes report unused gamepad axes/buttons as NaN; those carry no operator input, so they are
// sent as 0 (the server refuses any non-number, and a NaN pose still rejects the whole frame).
const finiteOrZero = (v) => (Number.isFinite(v) ? v : 0);

function controllerObject(frame, source, refSpace) {
  const pose = source.gripSpace ? frame.getPose(source.gripSpace, refSpace) : null;
  const pad = source.gamepad;
  return {
    pose: pose ? poseArray(pose) : null,
    buttons: pad ? Array.from(pad.buttons).slice(0, 8).map((b) => [b.pressed ? 1 : 0, finiteOrZero(b.value)]) : [],
    axes: pad ? Array.from(pad.axes).slice(0, 4).map(finiteOrZero) : [],
  };
}

function sendPoseFrame(time, frame, refSpace) {
  if (state.role !== "operator") return;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (ws.bufferedAmount > MAX_BUFFERED_BYTES) { state.posesSkipped += 1; return; }
  const viewer = frame.getViewerPose(refSpace);
  const msg = { type: "frame", seq: seq++, t: time, head: viewer ? poseArray(viewer) : null,
                controllers: {}, hands: {} };
  for (const source of frame.session.inputSources) {
    if (source.handedness !== "left" && source.handedness !== "right") continue;
    if (source.hand) msg.hands[source.handedness] = handArray(frame, source.hand, refSpace);
    else if (source.gamepad) msg.controllers[source.handedness] = controllerObject(frame, source, refSpace);
  }
  if (send(msg)) state.posesSent += 1;
}

// ------------------------------------------------------------------------------------------
// WebXR: rendering the camera (per eye) and the status panel, head-locked
// ------------------------------------------------------------------------------------------

const VERTEX_SHADER = `#version 300 es
in vec2 a_pos;
uniform mat4 u_projection;
uniform vec3 u_center;
uniform vec2 u_half;
out vec2 v_uv;
void main() {
  v_uv = vec2(a_pos.x * 0.5 + 0.5, 0.5 - a_pos.y * 0.5);
  gl_Position = u_projection * vec4(u_center + vec3(a_pos * u_half, 0.0), 1.0);
}`;
const FRAGMENT_SHADER = `#version 300 es
precision mediump float;
in vec2 v_uv;
uniform sampler2D u_texture;
out vec4 color;
void main() { color = texture(u_texture, v_uv); }`;

let gl = null;
let program = null;
let quad = null;
let textures = {};
let statusCanvas = null;
let statusDirty = true;

function compile(type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

function initGL(context) {
  gl = context;
  program = gl.createProgram();
  gl.attachShader(program, compile(gl.VERTEX_SHADER, VERTEX_SHADER));
  gl.attachShader(program, compile(gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
  gl.linkProgram(program);
  quad = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, quad);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
  for (const name of ["left", "right", "mono", "status"]) {
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array([0, 0, 0, 255]));
    textures[name] = tex;
  }
  statusCanvas = document.createElement("canvas");
  statusCanvas.width = 1024;
  statusCanvas.height = 256;
}

function drawStatusCanvas() {
  const ctx = statusCanvas.getContext("2d");
  ctx.fillStyle = "rgba(20, 24, 30, 0.9)";
  ctx.fillRect(0, 0, statusCanvas.width, statusCanvas.height);
  ctx.font = "36px DejaVu Sans, sans-serif";
  const lines = state.status ? statusLines(state.status) : null;
  if (!lines) {
    ctx.fillStyle = "#e8eaed";
    ctx.fillText("waiting for status…", 24, 60);
    return;
  }
  ctx.fillStyle = lines.recording === "● REC" ? "#ff5c5c" : "#e8eaed";
  ctx.fillText(`${lines.recording}   episode ${lines.episode}   ${lines.input}`, 24, 52);
  ctx.fillStyle = "#e8eaed";
  ctx.fillText(`task: ${lines.task}`.slice(0, 60), 24, 104);
  ctx.fillText(`next: ${lines.condition}`.slice(0, 60), 24, 156);
  ctx.fillStyle = "#ffcc66";
  ctx.fillText(lines.warnings.slice(0, 1).join("").slice(0, 60), 24, 208);
}

function uploadTextures() {
  for (const eye of ["left", "right", "mono"]) {
    if (eyeDirty[eye] && eyeImages[eye]) {
      gl.bindTexture(gl.TEXTURE_2D, textures[eye]);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, eyeImages[eye]);
      eyeDirty[eye] = false;
      state.framesDrawn += 1;
    }
  }
  if (statusDirty) {
    drawStatusCanvas();
    gl.bindTexture(gl.TEXTURE_2D, textures.status);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, statusCanvas);
    statusDirty = false;
  }
}

function drawQuad(projection, texture, center, half) {
  gl.bindTexture(gl.TEXTURE_2D, texture);
  gl.uniformMatrix4fv(gl.getUniformLocation(program, "u_projection"), false, projection);
  gl.uniform3fv(gl.getUniformLocation(program, "u_center"), center);
  gl.uniform2fv(gl.getUniformLocation(program, "u_half"), half);
  gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
}

function renderViews(frame, refSpace, layer) {
  const viewer = frame.getViewerPose(refSpace);
  gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
  gl.clearColor(0.05, 0.05, 0.06, 1);
  gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  if (!viewer) return;
  uploadTextures();
  gl.useProgram(program);
  gl.bindBuffer(gl.ARRAY_BUFFER, quad);
  const loc = gl.getAttribLocation(program, "a_pos");
  gl.enableVertexAttribArray(loc);
  gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
  const last = state.lastHeader;
  const aspect = last ? last.h / last.w : 0.75;
  for (const view of viewer.views) {
    const vp = layer.getViewport(view);
    gl.viewport(vp.x, vp.y, vp.width, vp.height);
    // Head-locked: geometry is given in view space, so only the projection is applied.
    // Each eye gets its own camera image, which is what makes the robot's stereo pair 3D.
    const eye = view.eye === "right" ? "right" : "left";
    const image = eyeImages[eye] ? eye : (eyeImages.mono ? "mono" : (eyeImages.left ? "left" : "right"));
    drawQuad(view.projectionMatrix, textures[image], [0, 0.05, -SCREEN_DISTANCE],
             [SCREEN_HALF_WIDTH, SCREEN_HALF_WIDTH * aspect]);
    drawQuad(view.projectionMatrix, textures.status,
             [0, 0.05 - SCREEN_HALF_WIDTH * aspect - 0.14, -SCREEN_DISTANCE], [0.4, 0.1]);
  }
}

async function enterVR() {
  const session = await navigator.xr.requestSession("immersive-vr", {
    requiredFeatures: ["local-floor"], optionalFeatures: ["hand-tracking"],
  });
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("webgl2", { xrCompatible: true });
  initGL(context);
  const layer = new XRWebGLLayer(session, context);
  session.updateRenderState({ baseLayer: layer });
  const refSpace = await session.requestReferenceSpace("local-floor");
  state.xrActive = true;
  statusDirty = true;
  const button = $("enter-vr");
  button.disabled = true;
  session.addEventListener("end", () => {
    state.xrActive = false;
    button.disabled = false;
    draw2D();
  });
  const onFrame = (time, frame) => {
    frame.session.requestAnimationFrame(onFrame);
    // Poses go out first: they are what the robot is waiting for; drawing can take longer.
    sendPoseFrame(time, frame, refSpace);
    renderViews(frame, refSpace, session.renderState.baseLayer);
  };
  session.requestAnimationFrame(onFrame);
}

async function detectXR() {
  const button = $("enter-vr");
  if (!("xr" in navigator) || !window.isSecureContext) {
    button.textContent = "VR not available (2D view)";
    return;
  }
  try {
    state.xrSupported = await navigator.xr.isSessionSupported("immersive-vr");
  } catch (err) {
    state.xrSupported = false;
  }
  if (state.xrSupported) {
    button.disabled = false;
    button.textContent = "Enter VR";
    button.onclick = () => enterVR().catch((err) => {
      state.errors.push("could not start VR: " + err.message);
      setBadge("role", "VR failed: " + err.message, "bad");
    });
  } else {
    button.textContent = "VR not available (2D view)";
  }
}

wireButtons();
detectXR().finally(connect);
