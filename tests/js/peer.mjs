// A Matrix peer on Element's crypto stack: matrix-js-sdk with its Rust crypto
// (@matrix-org/matrix-sdk-crypto-wasm). tuichat's tests drive it over
// stdin/stdout, one JSON object per line:
//   request  {"id": 1, "cmd": "login", "args": {...}}
//   reply    {"id": 1, "ok": true, "result": ...} or {"id": 1, "ok": false, "error": "..."}
//   event    {"event": "message", ...} (decrypted room messages, as they arrive)
// Everything the SDK logs goes to stderr, so stdout carries only the protocol.

// matrix-js-sdk 43 declares Node >= 22; on Node 20 this is all it misses.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function withResolvers() {
        let resolve;
        let reject;
        const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

const toStderr = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;
console.warn = toStderr;

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.JS_PEER_LOG_LEVEL || "warn");

function send(message) {
    process.stdout.write(JSON.stringify(message) + "\n");
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(predicate, timeoutMs = 30000, what = "condition") {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        const value = await predicate();
        if (value) return value;
        await sleep(50);
    }
    throw new Error(`timed out waiting for ${what}`);
}

let client = null;
let password = null;
// The secret storage key, handed to the SDK when it asks for it.
let secretStorageKey = null;
const messages = [];
// Every non-state room event, decrypted (type, content, relation).
const roomEvents = [];
const undecryptableEvents = [];
// Verifications by transaction id: {request, verifier, sas, done, cancelled}.
const verifications = new Map();
const incomingRequests = [];

function track(request) {
    const entry = { request, verifier: null, sas: null, done: false, cancelled: null };
    const attach = () => {
        const verifier = request.verifier;
        if (verifier && !entry.verifier) {
            entry.verifier = verifier;
            verifier.on("show_sas", (sas) => {
                entry.sas = sas;
            });
            verifier.on("cancel", (error) => {
                entry.cancelled = String(error?.message ?? error);
            });
            verifier.verify().then(
                () => {
                    entry.done = true;
                },
                (error) => {
                    entry.cancelled = entry.cancelled ?? String(error?.message ?? error);
                },
            );
        }
        if (request.phase === 4 /* Cancelled */ && !entry.cancelled) {
            entry.cancelled = String(request.cancellationCode ?? "cancelled");
        }
        if (request.phase === 5 /* Done */) entry.done = true;
    };
    request.on("change", attach);
    attach();
    return entry;
}

function recordEvent(event) {
    if (event.isDecryptionFailure()) {
        undecryptableEvents.push({ room_id: event.getRoomId(), event_id: event.getId() });
        send({
            event: "undecryptable",
            room_id: event.getRoomId(),
            event_id: event.getId(),
            sender: event.getSender(),
            reason: String(event.decryptionFailureReason ?? ""),
        });
        return;
    }
    if (!event.isState() && !roomEvents.some((e) => e.event_id === event.getId())) {
        roomEvents.push({
            room_id: event.getRoomId(),
            event_id: event.getId(),
            sender: event.getSender(),
            type: event.getType(),
            content: event.getContent(),
            // Replies are not "relations" to the SDK's getRelation().
            relation:
                event.getContent()?.["m.relates_to"] ?? event.getWireContent()?.["m.relates_to"] ?? null,
            redacts: event.event?.redacts ?? event.getContent()?.redacts ?? null,
            encrypted: event.isEncrypted(),
            // The SDK's own reading of the thread relation (null: main timeline).
            thread_root: event.threadRootId ?? null,
        });
    }
    if (event.getType() !== "m.room.message") return;
    if (messages.some((m) => m.event_id === event.getId())) return;
    const message = {
        room_id: event.getRoomId(),
        event_id: event.getId(),
        sender: event.getSender(),
        body: event.getContent().body,
        encrypted: event.isEncrypted(),
    };
    messages.push(message);
    send({ event: "message", ...message });
}

async function login({ homeserver, user, password: userPassword, deviceName }) {
    password = userPassword;
    const bare = sdk.createClient({ baseUrl: homeserver });
    const response = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password: userPassword,
        initial_device_display_name: deviceName || "js-peer",
    });
    client = sdk.createClient({
        baseUrl: homeserver,
        userId: response.user_id,
        deviceId: response.device_id,
        accessToken: response.access_token,
        // Element Web's methods: emoji, and showing a QR code, but no
        // scanning (no camera). setVerificationMethods makes it a phone.
        verificationMethods: ["m.sas.v1", "m.qr_code.show.v1", "m.reciprocate.v1"],
        cryptoCallbacks: {
            getSecretStorageKey: async ({ keys }) => {
                if (!secretStorageKey) return null;
                return [Object.keys(keys)[0], secretStorageKey];
            },
            cacheSecretStorageKey: (_keyId, _keyInfo, key) => {
                secretStorageKey = key;
            },
        },
    });
    await client.initRustCrypto({ useIndexedDB: false });
    client.on(sdk.RoomEvent.Timeline, (event) => {
        if (event.isBeingDecrypted() || event.shouldAttemptDecryption()) return;
        recordEvent(event);
    });
    client.on(sdk.MatrixEventEvent.Decrypted, (event) => recordEvent(event));
    client.on("crypto.verificationRequestReceived", (request) => {
        const entry = track(request);
        verifications.set(request.transactionId, entry);
        incomingRequests.push(entry);
    });
    client.on(sdk.RoomMemberEvent.Membership, (event, member) => {
        if (member.userId === client.getUserId() && member.membership === "invite") {
            send({ event: "invite", room_id: member.roomId });
        }
    });
    const prepared = new Promise((resolve) => {
        client.on(sdk.ClientEvent.Sync, (state) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;
    const keys = await client.getCrypto().getOwnDeviceKeys();
    return {
        user_id: response.user_id,
        device_id: response.device_id,
        ed25519: keys.ed25519,
        curve25519: keys.curve25519,
    };
}

async function roomReady(roomId, memberIds = []) {
    // The SDK sends plaintext to a room it has not yet synced as encrypted:
    // wait until it is joined and known encrypted, with the members there.
    await waitFor(
        async () => {
            const room = client.getRoom(roomId);
            if (!room || room.getMyMembership() !== "join") return false;
            if (!(await client.getCrypto().isEncryptionEnabledInRoom(roomId))) return false;
            return memberIds.every((id) => {
                const membership = room.getMember(id)?.membership;
                return membership === "join" || membership === "invite";
            });
        },
        30000,
        `room ${roomId} to be ready`,
    );
}

// Element's key export file format (spec: "Key export format"), with WebCrypto.
const subtle = globalThis.crypto.subtle;

async function deriveKeys(passphrase, salt, rounds) {
    const material = await subtle.importKey(
        "raw",
        new TextEncoder().encode(passphrase),
        { name: "PBKDF2" },
        false,
        ["deriveBits"],
    );
    const bits = new Uint8Array(
        await subtle.deriveBits({ name: "PBKDF2", salt, iterations: rounds, hash: "SHA-512" }, material, 512),
    );
    const aes = await subtle.importKey("raw", bits.slice(0, 32), { name: "AES-CTR" }, false, [
        "encrypt",
        "decrypt",
    ]);
    const hmac = await subtle.importKey(
        "raw",
        bits.slice(32),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
    );
    return { aes, hmac };
}

async function encryptKeyFile(plaintext, passphrase, rounds = 500000) {
    const salt = globalThis.crypto.getRandomValues(new Uint8Array(16));
    const iv = globalThis.crypto.getRandomValues(new Uint8Array(16));
    iv[8] &= 0x7f;
    const { aes, hmac } = await deriveKeys(passphrase, salt, rounds);
    const ciphertext = new Uint8Array(
        await subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, aes, new TextEncoder().encode(plaintext)),
    );
    const body = new Uint8Array(1 + 16 + 16 + 4 + ciphertext.length);
    body[0] = 1;
    body.set(salt, 1);
    body.set(iv, 17);
    new DataView(body.buffer).setUint32(33, rounds);
    body.set(ciphertext, 37);
    const mac = new Uint8Array(await subtle.sign("HMAC", hmac, body));
    const all = Buffer.concat([Buffer.from(body), Buffer.from(mac)]).toString("base64");
    const lines = all.match(/.{1,76}/g);
    return ["-----BEGIN MEGOLM SESSION DATA-----", ...lines, "-----END MEGOLM SESSION DATA-----", ""].join("\n");
}

async function decryptKeyFile(text, passphrase) {
    const inner = text
        .replace("-----BEGIN MEGOLM SESSION DATA-----", "")
        .replace("-----END MEGOLM SESSION DATA-----", "")
        .replace(/\s+/g, "");
    const data = new Uint8Array(Buffer.from(inner, "base64"));
    if (data[0] !== 1) throw new Error("unsupported key file version");
    const salt = data.slice(1, 17);
    const iv = data.slice(17, 33);
    const rounds = new DataView(data.buffer).getUint32(33);
    const body = data.slice(0, data.length - 32);
    const mac = data.slice(data.length - 32);
    const { aes, hmac } = await deriveKeys(passphrase, salt, rounds);
    if (!(await subtle.verify("HMAC", hmac, mac, body))) throw new Error("wrong passphrase");
    const plaintext = await subtle.decrypt({ name: "AES-CTR", counter: iv, length: 64 }, aes, body.slice(37));
    return new TextDecoder().decode(plaintext);
}

// Encrypted attachments (spec: AES-256-CTR, SHA-256 of the ciphertext),
// with WebCrypto, as Element's matrix-encrypt-attachment does them.
const unpadded = (bytes) => Buffer.from(bytes).toString("base64").replace(/=+$/, "");

async function encryptAttachment(data) {
    const iv = new Uint8Array(16);
    globalThis.crypto.getRandomValues(iv.subarray(0, 8));
    const key = await subtle.generateKey({ name: "AES-CTR", length: 256 }, true, ["encrypt", "decrypt"]);
    const ciphertext = new Uint8Array(await subtle.encrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, data));
    const jwk = await subtle.exportKey("jwk", key);
    const sha256 = new Uint8Array(await subtle.digest("SHA-256", ciphertext));
    return {
        ciphertext,
        file: {
            v: "v2",
            key: { kty: "oct", alg: "A256CTR", k: jwk.k, ext: true, key_ops: ["encrypt", "decrypt"] },
            iv: unpadded(iv),
            hashes: { sha256: unpadded(sha256) },
        },
    };
}

async function decryptAttachment(ciphertext, file) {
    const sha256 = unpadded(new Uint8Array(await subtle.digest("SHA-256", ciphertext)));
    if (sha256 !== file.hashes.sha256) throw new Error("attachment hash mismatch");
    const key = await subtle.importKey("jwk", { ...file.key, key_ops: ["encrypt", "decrypt"] }, { name: "AES-CTR" }, false, ["decrypt"]);
    const iv = Buffer.from(file.iv, "base64");
    return new Uint8Array(await subtle.decrypt({ name: "AES-CTR", counter: iv, length: 64 }, key, ciphertext));
}

const commands = {
    login,

    async sendFile({ roomId, dataB64, name, mimetype }) {
        await roomReady(roomId);
        const data = Buffer.from(dataB64, "base64");
        const encrypted = client.getRoom(roomId)?.hasEncryptionStateEvent();
        let body = data;
        let file = null;
        if (encrypted) {
            const result = await encryptAttachment(data);
            body = Buffer.from(result.ciphertext);
            file = result.file;
        }
        const { content_uri } = await client.uploadContent(body, {
            name,
            type: encrypted ? "application/octet-stream" : mimetype,
        });
        const content = { msgtype: "m.file", body: name, info: { mimetype, size: data.length } };
        if (file) content.file = { ...file, url: content_uri };
        else content.url = content_uri;
        const { event_id } = await client.sendEvent(roomId, "m.room.message", content);
        return event_id;
    },

    async downloadFile({ content }) {
        const url = content.file ? content.file.url : content.url;
        const http = client.mxcUrlToHttp(url, undefined, undefined, undefined, false, true, true);
        const response = await fetch(http, { headers: { Authorization: `Bearer ${client.getAccessToken()}` } });
        if (!response.ok) throw new Error(`download failed: ${response.status}`);
        let data = new Uint8Array(await response.arrayBuffer());
        if (content.file) data = await decryptAttachment(data, content.file);
        return Buffer.from(data).toString("base64");
    },

    async createRoom({ invite = [], encrypted = true, name, isDirect = false, preset = null }) {
        const initialState = encrypted
            ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }]
            : [];
        const options = {
            invite,
            is_direct: isDirect,
            preset: preset ?? (isDirect ? "trusted_private_chat" : "private_chat"),
            initial_state: initialState,
        };
        if (name) options.name = name;
        const { room_id } = await client.createRoom(options);
        if (encrypted) await roomReady(room_id);
        else await waitFor(() => client.getRoom(room_id)?.getMyMembership() === "join");
        return room_id;
    },

    // Spaces as Element makes them: a public room of type m.space whose
    // rooms are its m.space.child events (each room names it back).
    async createSpace({ name, invite = [] }) {
        const { room_id } = await client.createRoom({
            name,
            invite,
            preset: "public_chat",
            creation_content: { type: "m.space" },
            power_level_content_override: { events_default: 100 },
        });
        await waitFor(() => client.getRoom(room_id)?.getMyMembership() === "join");
        return room_id;
    },

    async addSpaceChild({ spaceId, childId, order = null, suggested = false }) {
        const via = [client.getDomain()];
        const content = { via, suggested };
        if (order !== null) content.order = order;
        await client.sendStateEvent(spaceId, "m.space.child", content, childId);
        await client.sendStateEvent(childId, "m.space.parent", { via, canonical: true }, spaceId);
        return true;
    },

    async join({ roomId }) {
        await waitFor(() => client.getRoom(roomId), 30000, `invite to ${roomId}`);
        await client.joinRoom(roomId);
        await roomReady(roomId);
        return roomId;
    },

    async waitForMember({ roomId, userId }) {
        await roomReady(roomId, [userId]);
        await waitFor(() => client.getRoom(roomId).getMember(userId)?.membership === "join");
        return true;
    },

    async send({ roomId, body }) {
        await roomReady(roomId);
        const { event_id } = await client.sendTextMessage(roomId, body);
        return event_id;
    },

    async waitForMessage({ roomId, body, timeoutMs = 30000 }) {
        return await waitFor(
            () => messages.find((m) => m.room_id === roomId && m.body === body),
            timeoutMs,
            `message "${body}"`,
        );
    },

    async sendEvent({ roomId, type, content, encrypted = true }) {
        if (encrypted) await roomReady(roomId);
        else await waitFor(() => client.getRoom(roomId)?.getMyMembership() === "join");
        const { event_id } = await client.sendEvent(roomId, type, content);
        return event_id;
    },

    // Polls as Element sends them (the SDK's own builders, MSC3381's names).
    async sendPoll({ roomId, question, answers, disclosed = true }) {
        await roomReady(roomId);
        const { PollStartEvent } = await import("matrix-js-sdk/lib/extensible_events_v1/PollStartEvent.js");
        const { M_POLL_KIND_DISCLOSED, M_POLL_KIND_UNDISCLOSED } = await import("matrix-js-sdk/lib/@types/polls.js");
        const kind = disclosed ? M_POLL_KIND_DISCLOSED : M_POLL_KIND_UNDISCLOSED;
        const { type, content } = PollStartEvent.from(question, answers, kind).serialize();
        const { event_id } = await client.sendEvent(roomId, type, content);
        return { eventId: event_id, content };
    },

    async votePoll({ roomId, pollEventId, answerIds }) {
        const { PollResponseEvent } = await import("matrix-js-sdk/lib/extensible_events_v1/PollResponseEvent.js");
        const { type, content } = PollResponseEvent.from(answerIds, pollEventId).serialize();
        const { event_id } = await client.sendEvent(roomId, type, content);
        return event_id;
    },

    async endPoll({ roomId, pollEventId }) {
        const { PollEndEvent } = await import("matrix-js-sdk/lib/extensible_events_v1/PollEndEvent.js");
        const { type, content } = PollEndEvent.from(pollEventId, "The poll has ended").serialize();
        const { event_id } = await client.sendEvent(roomId, type, content);
        return event_id;
    },

    // `nth`: the nth such event (0: the first), to wait for later ones.
    async waitForEvent({ roomId, type, relType = null, sender = null, timeoutMs = 30000, nth = 0 }) {
        return await waitFor(
            () =>
                roomEvents.filter(
                    (e) =>
                        e.room_id === roomId &&
                        e.type === type &&
                        (sender === null || e.sender === sender) &&
                        (relType === null ||
                            e.relation?.rel_type === relType ||
                            (relType === "m.in_reply_to" && e.relation?.["m.in_reply_to"])),
                )[nth],
            timeoutMs,
            `a ${type} event`,
        );
    },

    // Threads: a reply in thread `rootId` as Element sends it (the SDK adds
    // the m.thread relation; `latest` makes the fallback reply point at the
    // thread's newest event, `replyTo` makes it a real reply instead).
    async sendThreadReply({ roomId, rootId, body, latest = null, replyTo = null }) {
        await roomReady(roomId);
        const content = { msgtype: "m.text", body };
        if (replyTo) {
            content["m.relates_to"] = { "m.in_reply_to": { event_id: replyTo } };
        } else if (latest) {
            content["m.relates_to"] = {
                rel_type: "m.thread",
                event_id: rootId,
                is_falling_back: true,
                "m.in_reply_to": { event_id: latest },
            };
        }
        const { event_id } = await client.sendMessage(roomId, rootId, content);
        return event_id;
    },

    async waitForThreadEvent({ roomId, rootId, body = null, timeoutMs = 30000 }) {
        return await waitFor(
            () =>
                roomEvents.find(
                    (e) =>
                        e.room_id === roomId &&
                        e.thread_root === rootId &&
                        e.type === "m.room.message" &&
                        (body === null || e.content?.body === body),
                ),
            timeoutMs,
            `a reply in thread ${rootId}`,
        );
    },

    // A read receipt with a thread_id (MSC3771): a root, or "main".
    async sendThreadedReceipt({ roomId, eventId, threadId }) {
        const path = `/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(eventId)}`;
        await client.http.authedRequest("POST", path, undefined, { thread_id: threadId });
        return true;
    },

    // The room's receipts as the server hands them to a fresh sync:
    // [{event_id, user_id, thread_id}].
    async serverReceipts({ roomId }) {
        const filter = JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 1 } } });
        const response = await client.http.authedRequest("GET", "/sync", { filter, timeout: "0" });
        const receipts = [];
        const ephemeral = response.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
        for (const event of ephemeral) {
            if (event.type !== "m.receipt") continue;
            for (const [eventId, kinds] of Object.entries(event.content)) {
                for (const [userId, data] of Object.entries(kinds["m.read"] ?? {})) {
                    receipts.push({ event_id: eventId, user_id: userId, thread_id: data.thread_id ?? null });
                }
            }
        }
        return receipts;
    },

    async discardRoomKey({ roomId }) {
        // The next message goes out under a new room key, shared anew.
        await client.getCrypto().forceDiscardSession(roomId);
        return true;
    },

    async messages({ roomId }) {
        return messages.filter((m) => m.room_id === roomId);
    },

    async exportKeys({ passphrase, rounds }) {
        const json = await client.getCrypto().exportRoomKeysAsJson();
        return await encryptKeyFile(json, passphrase, rounds);
    },

    async importKeys({ text, passphrase }) {
        const json = await decryptKeyFile(text, passphrase);
        await client.getCrypto().importRoomKeysAsJson(json);
        return JSON.parse(json).length;
    },

    async deviceKeys({ userId }) {
        const devices = await client.getCrypto().getUserDeviceInfo([userId], true);
        const result = [];
        for (const [deviceId, device] of devices.get(userId) ?? []) {
            result.push({
                device_id: deviceId,
                ed25519: device.getFingerprint(),
                curve25519: device.getIdentityKey(),
                display_name: device.displayName ?? null,
            });
        }
        return result;
    },

    async requestVerification({ userId, deviceId }) {
        const request = await client.getCrypto().requestDeviceVerification(userId, deviceId);
        const entry = track(request);
        verifications.set(request.transactionId, entry);
        return request.transactionId;
    },

    async acceptVerification({ timeoutMs = 30000 }) {
        const entry = await waitFor(() => incomingRequests.shift(), timeoutMs, "a verification request");
        await entry.request.accept();
        return { transaction_id: entry.request.transactionId, other_device: entry.request.otherDeviceId };
    },

    async startSas({ txn }) {
        const entry = verifications.get(txn);
        await waitFor(() => entry.request.phase === 3 /* Ready */, 30000, "ready");
        const verifier = await entry.request.startVerification("m.sas.v1");
        entry.request.emit?.("change");
        if (!entry.verifier) {
            entry.verifier = verifier;
            verifier.on("show_sas", (sas) => {
                entry.sas = sas;
            });
            verifier.verify().then(
                () => {
                    entry.done = true;
                },
                (error) => {
                    entry.cancelled = entry.cancelled ?? String(error?.message ?? error);
                },
            );
        }
        return true;
    },

    async setVerificationMethods({ methods }) {
        client.getCrypto().setSupportedVerificationMethods(methods);
        return true;
    },

    async verificationMethods({ txn, timeoutMs = 30000 }) {
        // The methods the other side offered, once it did (request or ready).
        const entry = await waitFor(() => verifications.get(txn), timeoutMs, "verification");
        const request = entry.request;
        await waitFor(() => request.phase >= 3 /* Ready */ || !request.initiatedByMe, timeoutMs, "ready");
        return {
            other_party_supports: {
                sas: request.otherPartySupportsMethod("m.sas.v1"),
                show: request.otherPartySupportsMethod("m.qr_code.show.v1"),
                scan: request.otherPartySupportsMethod("m.qr_code.scan.v1"),
                reciprocate: request.otherPartySupportsMethod("m.reciprocate.v1"),
            },
        };
    },

    async scanQrCode({ txn, data, timeoutMs = 30000 }) {
        // Scan the code tuichat showed (`data`: its bytes as base64), as a
        // phone's camera would: Element checks the keys in it and sends the
        // reciprocation with the secret; then waits for tuichat's `done`.
        const entry = await waitFor(() => verifications.get(txn), timeoutMs, "verification");
        await waitFor(() => entry.request.phase === 3 /* Ready */, timeoutMs, "ready");
        const verifier = await entry.request.scanQRCode(Uint8ClampedArray.from(Buffer.from(data, "base64")));
        if (!entry.verifier) {
            entry.verifier = verifier;
            verifier.on("cancel", (error) => {
                entry.cancelled = String(error?.message ?? error);
            });
            verifier.verify().then(
                () => {
                    entry.done = true;
                },
                (error) => {
                    entry.cancelled = entry.cancelled ?? String(error?.message ?? error);
                },
            );
        }
        return true;
    },

    async waitSas({ txn, timeoutMs = 30000 }) {
        const entry = await waitFor(() => verifications.get(txn), timeoutMs, "verification");
        const sas = await waitFor(() => entry.sas, timeoutMs, "emoji");
        return {
            emoji: (sas.sas.emoji ?? []).map(([emoji, name]) => [emoji, name]),
            decimals: sas.sas.decimal ?? [],
        };
    },

    async confirmSas({ txn }) {
        await verifications.get(txn).sas.confirm();
        return true;
    },

    async mismatchSas({ txn }) {
        verifications.get(txn).sas.mismatch();
        return true;
    },

    async verificationState({ txn, waitFor: wanted, timeoutMs = 30000 }) {
        const entry = verifications.get(txn);
        const state = () => ({
            phase: entry.request.phase,
            done: entry.done,
            cancelled: entry.cancelled,
            cancellation_code: entry.request.cancellationCode ?? null,
        });
        if (wanted === "done") await waitFor(() => entry.done, timeoutMs, "done");
        if (wanted === "cancelled") await waitFor(() => entry.cancelled || entry.request.phase === 4, timeoutMs, "cancelled");
        return state();
    },

    async isVerified({ userId, deviceId }) {
        const status = await client.getCrypto().getDeviceVerificationStatus(userId, deviceId);
        return Boolean(status?.isVerified());
    },

    async bootstrapRecovery({ passphrase }) {
        const crypto = client.getCrypto();
        const generated = await crypto.createRecoveryKeyFromPassphrase(passphrase || undefined);
        secretStorageKey = generated.privateKey;
        await crypto.bootstrapCrossSigning({
            authUploadDeviceSigningKeys: async (makeRequest) => {
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: client.getUserId() },
                    password,
                });
            },
        });
        await crypto.bootstrapSecretStorage({
            createSecretStorageKey: async () => generated,
            setupNewKeyBackup: true,
            setupNewSecretStorage: true,
        });
        return {
            recovery_key: generated.encodedPrivateKey,
            backup_version: await crypto.getActiveSessionBackupVersion(),
        };
    },

    async bootstrapCrossSigning() {
        // Cross-signing keys only (no secret storage, no key backup): the
        // state of an Element account before "set up recovery".
        await client.getCrypto().bootstrapCrossSigning({
            authUploadDeviceSigningKeys: async (makeRequest) => {
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: client.getUserId() },
                    password,
                });
            },
        });
        const status = await client.getCrypto().getCrossSigningStatus();
        return { public_keys_on_device: status.publicKeysOnDevice, private_keys_cached: status.privateKeysCachedLocally };
    },

    async restoreFromBackup({ recoveryKey }) {
        const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
        secretStorageKey = decodeRecoveryKey(recoveryKey);
        const crypto = client.getCrypto();
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        await crypto.checkKeyBackupAndEnable();
        const result = await crypto.restoreKeyBackup();
        return { total: result.total, imported: result.imported };
    },

    async setIsolation({ mode }) {
        const api = await import("matrix-js-sdk/lib/crypto-api/index.js");
        const isolation =
            mode === "onlySigned"
                ? new api.OnlySignedDevicesIsolationMode()
                : new api.AllDevicesIsolationMode(false);
        client.getCrypto().setDeviceIsolationMode(isolation);
        return true;
    },

    async deviceStatus({ userId, deviceId }) {
        await client.getCrypto().getUserDeviceInfo([userId], true);
        const status = await client.getCrypto().getDeviceVerificationStatus(userId, deviceId);
        if (!status) return null;
        return {
            signed_by_owner: status.signedByOwner,
            cross_signing_verified: status.crossSigningVerified,
            local_verified: status.localVerified,
            verified: status.isVerified(),
        };
    },

    async userStatus({ userId }) {
        const status = await client.getCrypto().getUserVerificationStatus(userId);
        return {
            cross_signing_verified: status.isCrossSigningVerified(),
            was_verified: status.wasCrossSigningVerified(),
            needs_approval: Boolean(status.needsUserApproval),
        };
    },

    async requestVerificationDM({ userId, roomId }) {
        const request = await client.getCrypto().requestVerificationDM(userId, roomId);
        const entry = track(request);
        await waitFor(() => request.transactionId, 30000, "the request to be sent");
        verifications.set(request.transactionId, entry);
        return request.transactionId;
    },

    async resetCrossSigning() {
        await client.getCrypto().bootstrapCrossSigning({
            setupNewCrossSigning: true,
            authUploadDeviceSigningKeys: async (makeRequest) => {
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: client.getUserId() },
                    password,
                });
            },
        });
        return true;
    },

    // -- notifications (issue 23): push rules as Element's RoomNotifs writes and reads them --

    async setRoomNotifState({ roomId, state }) {
        const remove = async (kind) => {
            try {
                await client.deletePushRule("global", kind, roomId);
            } catch (error) {
                if (error?.httpStatus !== 404) throw error;
            }
        };
        if (state === "mute") {
            await client.addPushRule("global", "override", roomId, {
                conditions: [{ kind: "event_match", key: "room_id", pattern: roomId }],
                actions: [],
            });
            return true;
        }
        await remove("override");
        if (state === "mentions") {
            await client.addPushRule("global", "room", roomId, { actions: [] });
        } else if (state === "all_loud") {
            await client.addPushRule("global", "room", roomId, {
                actions: ["notify", { set_tweak: "sound", value: "default" }],
            });
        } else {
            await remove("room");
        }
        return true;
    },

    async roomNotifState({ roomId, waitFor: wanted = null, timeoutMs = 30000 }) {
        // What Element's room notification menu shows, from the synced rules.
        const silent = (rule) =>
            rule.actions.length === 0 || rule.actions.every((a) => a === "dont_notify");
        const read = () => {
            const rules = client.pushRules?.global ?? {};
            const mute = (rules.override ?? []).find(
                (rule) =>
                    rule.enabled &&
                    silent(rule) &&
                    rule.conditions?.length === 1 &&
                    rule.conditions[0].kind === "event_match" &&
                    rule.conditions[0].key === "room_id" &&
                    rule.conditions[0].pattern === roomId,
            );
            if (mute) return "mute";
            const roomRule = (rules.room ?? []).find((rule) => rule.rule_id === roomId);
            if (!roomRule?.enabled) return "all";
            if (silent(roomRule)) return "mentions";
            const sound = roomRule.actions.some((a) => typeof a === "object" && a.set_tweak === "sound");
            return sound ? "all_loud" : "unknown";
        };
        if (wanted === null) return read();
        await waitFor(() => read() === wanted, timeoutMs, `room setting ${wanted}`);
        return read();
    },

    async pushActions({ roomId, eventId, timeoutMs = 30000 }) {
        // How matrix-js-sdk's push processor (Element's) evaluates an event.
        const event = await waitFor(
            () => client.getRoom(roomId)?.findEventById(eventId),
            timeoutMs,
            `event ${eventId}`,
        );
        const actions = client.getPushActionsForEvent(event, true);
        return { notify: Boolean(actions?.notify), highlight: Boolean(actions?.tweaks?.highlight) };
    },

    async ruleNotifies({ kind, ruleId, waitFor: wanted = null, timeoutMs = 30000 }) {
        // Whether a rule of the synced rules notifies (Element's settings read this).
        const read = () => {
            const rule = (client.pushRules?.global?.[kind] ?? []).find((r) => r.rule_id === ruleId);
            return Boolean(rule?.enabled && rule.actions.includes("notify"));
        };
        if (wanted === null) return read();
        await waitFor(() => read() === wanted, timeoutMs, `${ruleId} notify ${wanted}`);
        return read();
    },

    async setMarkedUnread({ roomId, unread }) {
        await client.setRoomAccountData(roomId, "m.marked_unread", { unread });
        return true;
    },

    async markedUnread({ roomId, waitFor: wanted = null, timeoutMs = 30000 }) {
        const read = () => {
            const room = client.getRoom(roomId);
            const stable = room?.getAccountData("m.marked_unread")?.getContent();
            const unstable = room?.getAccountData("com.famedly.marked_unread")?.getContent();
            return Boolean((stable ?? unstable)?.unread);
        };
        if (wanted === null) return read();
        await waitFor(() => read() === wanted, timeoutMs, `marked unread ${wanted}`);
        return read();
    },

    async setPowerLevel({ roomId, userId, level }) {
        await roomReady(roomId);
        await client.setPowerLevel(roomId, userId, level);
        return true;
    },

    // -- dehydrated devices (MSC3814, issue 26) --------------------------------------------

    async startDehydration({ recoveryKey = null, rehydrate = true, createNewKey = false }) {
        // As Element after "verify with recovery key": the cross-signing keys
        // from secret storage, then rehydrate (if a device is there) and keep
        // a new dehydrated device.
        const { CryptoEvent } = await import("matrix-js-sdk/lib/crypto-api/index.js");
        const crypto = client.getCrypto();
        if (recoveryKey) {
            const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
            secretStorageKey = decodeRecoveryKey(recoveryKey);
            // Our identity as the server has it, before its private keys are imported.
            await crypto.getUserDeviceInfo([client.getUserId()], true);
            await waitFor(
                async () => (await crypto.getCrossSigningStatus()).publicKeysOnDevice,
                30000,
                "our cross-signing identity",
            );
            await crypto.bootstrapCrossSigning({});
        }
        const outcome = { rehydrated: false, error: null, room_keys: 0, to_device: 0 };
        const progress = (roomKeys, toDevice) => {
            outcome.room_keys = roomKeys;
            outcome.to_device = toDevice;
        };
        const completed = () => {
            outcome.rehydrated = true;
        };
        const failed = (message) => {
            outcome.error = String(message);
        };
        client.on(CryptoEvent.RehydrationProgress, progress);
        client.on(CryptoEvent.RehydrationCompleted, completed);
        client.on(CryptoEvent.RehydrationError, failed);
        try {
            await crypto.startDehydration({ rehydrate, createNewKey });
        } finally {
            client.off(CryptoEvent.RehydrationProgress, progress);
            client.off(CryptoEvent.RehydrationCompleted, completed);
            client.off(CryptoEvent.RehydrationError, failed);
        }
        return outcome;
    },

    async dehydratedDevice() {
        // The server's dehydrated device of this account: {device_id, algorithm} or null.
        try {
            const reply = await client.http.authedRequest("GET", "/dehydrated_device", undefined, undefined, {
                prefix: "/_matrix/client/unstable/org.matrix.msc3814.v1",
            });
            return { device_id: reply.device_id, algorithm: reply.device_data?.algorithm ?? null };
        } catch (error) {
            if (error?.errcode === "M_NOT_FOUND") return null;
            throw error;
        }
    },

    async logout() {
        // Sign this device out (the server deletes it and its keys).
        client.stopClient();
        await client.logout(true);
        return true;
    },

    async undecryptable({ roomId }) {
        return undecryptableEvents.filter((e) => e.room_id === roomId);
    },

    async stop() {
        if (client) {
            client.stopClient();
            await client.getCrypto()?.stop?.();
        }
        setTimeout(() => process.exit(0), 50);
        return true;
    },
};

let buffer = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line.trim()) continue;
        const { id, cmd, args } = JSON.parse(line);
        const handler = commands[cmd];
        if (!handler) {
            send({ id, ok: false, error: `unknown command ${cmd}` });
            continue;
        }
        handler(args ?? {}).then(
            (result) => send({ id, ok: true, result }),
            (error) => send({ id, ok: false, error: String(error?.stack ?? error) }),
        );
    }
});
process.stdin.on("end", () => process.exit(0));
send({ event: "ready" });
