/**
 * Limits against hostile input, defaults a configuration may change, and timeouts, in one place.
 *
 * Configuration may lower or raise the ones marked "configurable". The wire contract's constants
 * (versions, sizes both ends must agree on) are in `protocol.ts`; the mail adapters' tuning in
 * `mail/tuning.ts`.
 *
 * @module
 */

/** Largest raw mail the host fetches and parses (configurable). */
export const MAX_MAIL_BYTES = 64 * 1024;

/**
 * Most mails a host handles together: checked, saved in one table update, answered, deleted
 * at once. A crash repeats at most this many replies; a larger batch saves table writes.
 */
export const HOST_BATCH_SIZE = 32;
/**
 * With claims in the shared store, a host offers the ledger a window of this many batches of
 * the listing and takes up to one batch of it: the mails other processes hold are skipped
 * instead of leaving the batch short (docs/decisions.md "Claims in the shared store").
 */
export const CLAIM_WINDOW_BATCHES = 4;
/**
 * How long reaching a mail server (IMAP, POP3, SMTP) may take by default, in ms: TCP connect,
 * TLS handshake and the server's greeting together (configurable per server as
 * `connect_timeout`). Past it the user learns that nothing answers there.
 */
export const DEFAULT_MAIL_CONNECT_TIMEOUT_MS = 10_000;
/** Shortest `connect_timeout` of a mail server, in ms. */
export const MIN_MAIL_CONNECT_TIMEOUT_MS = 1_000;
/** Longest `connect_timeout` of a mail server, in ms. */
export const MAX_MAIL_CONNECT_TIMEOUT_MS = 300_000;

/** How many Ed25519 verification keys stay imported (least recently used go first). */
export const VERIFY_KEY_CACHE_SIZE = 256;

/** Peers in one reply (configurable). */
export const DEFAULT_PEERS_PER_REPLY = 8;
/** Control table capacity; when full the oldest row is overwritten (configurable). */
export const DEFAULT_TABLE_CAPACITY = 1000;
/** Age after which a row expires and a request is stale, in ms (configurable). */
export const DEFAULT_EXPIRY_MS = 12 * 60 * 60 * 1000;
/** How far a request's Date may lie in the future (clock skew), in ms. */
export const MAX_CLOCK_SKEW_MS = 10 * 60 * 1000;
/** How long `mailpeer doctor` waits for the mail it sends itself, in ms. */
export const DOCTOR_SELF_MAIL_TIMEOUT_MS = 60_000;

/** How long a terminal waits for the reply by default, in ms (configurable). */
export const DEFAULT_REPLY_TIMEOUT_MS = 120_000;
/** How long one connection attempt to a peer may take, in ms (configurable). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** How long a terminal stays on standby by default, in ms (configurable). */
export const DEFAULT_STANDBY_TIMEOUT_MS = 10 * 60 * 1000;
/** How long a DISCONNECT waits for its ACK, in ms. */
export const DISCONNECT_TIMEOUT_MS = 2_000;
/**
 * How long a large DATA frame that starts a message waits, unread, for a `receive()` to open
 * it into (a receive loop's turn between two calls, a file write included, is far shorter);
 * after that the link opens it into a new array and reads on, so PING and DISCONNECT behind it
 * are answered at most this late.
 */
export const RECEIVE_PARK_MS = 25;
/** Poll interval of a mail source that has no push notification, in ms (configurable). */
export const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** How long a table lock may be waited for before giving up, in ms. */
export const TABLE_LOCK_TIMEOUT_MS = 10_000;
/** A table lock older than this is considered abandoned by a crashed process, in ms. */
export const TABLE_LOCK_STALE_MS = 60_000;
/** How often a `waiting` progress event is repeated while nothing arrives, in ms. */
export const WAITING_REPORT_MS = 5_000;
/** How long `host --once` waits for an overlapping host run to finish before giving up, in ms. */
export const HOST_RUN_LOCK_WAIT_MS = 60_000;
/** Poll interval of a terminal waiting for its reply (IMAP NOOP, POP3 STAT), in ms (configurable). */
export const DEFAULT_TERMINAL_POLL_INTERVAL_MS = 50;
/** Interval of PING on an idle peer link, in ms. */
export const PEER_KEEPALIVE_MS = 15_000;
/** Silence after which a peer counts as vanished, in ms. */
export const PEER_IDLE_TIMEOUT_MS = 45_000;
/** Requests one user id may make per hour before the host stops answering (configurable). */
export const DEFAULT_REQUESTS_PER_USER_PER_HOUR = 30;
/** Requests one sender address may make per hour, over all its user ids (configurable). */
export const DEFAULT_REQUESTS_PER_SENDER_PER_HOUR = 120;
/** The window of the request rate limits, in ms. */
export const RATE_WINDOW_MS = 60 * 60 * 1000;
/** How often a long-running host pushes its table to its pool, in ms (configurable). */
export const DEFAULT_SYNC_INTERVAL_MS = 5 * 60 * 1000;
/**
 * Linked hosts (docs/decisions.md "Linked hosts"): most hops a synced row may travel from the
 * host its terminal mailed (configurable as `host.max_hops`, at most `MAX_LINK_HOPS`).
 */
export const DEFAULT_MAX_HOPS = 4;
/** Largest `host.max_hops`, and the largest hop count a sync row may carry on the wire. */
export const MAX_LINK_HOPS = 16;
/** Most hosts in `host.links`. */
export const MAX_LINKS = 16;
/** Forwarding mails a host sends one sync partner per hour beyond its periodic push (configurable). */
export const DEFAULT_FORWARDS_PER_HOUR = 60;
/** Answers to table requests of hosts that are only learned (not trusted), per hour in all. */
export const LEARNED_ANSWERS_PER_HOUR = 6;
/** Recipient addresses read from one request's To and Cc (the rest are ignored). */
export const MAX_REQUEST_RECIPIENTS = 64;
/** A mail claimed longer ago than this by a host process that died is put back, in ms. */
export const CLAIM_RECOVERY_MS = 10 * 60 * 1000;

// ---- transports (issue 12) ----

/** Control frames (datagrams) that may arrive out of order and still open: a replay window. */
export const CONTROL_REPLAY_WINDOW = 64;
/** Sealed control frames a UDP peer holds when they overtake the end of its handshake. */
export const MAX_HELD_CONTROL_FRAMES = 8;
/**
 * Time slot of a UDP listener's CONNECT cookies, in ms: a cookie is accepted in the slot it was
 * made in and the next one, so it lives 30 to 60 s.
 */
export const COOKIE_SLOT_MS = 30_000;
/** COOKIE frames one UDP connect attempt follows at most (each makes it send CONNECT again). */
export const MAX_COOKIE_ROUNDS = 4;
/**
 * Handshakes a TCP listener runs at once by default (configurable: `maxPendingHandshakes`); a
 * connection past it is closed at once.
 */
export const MAX_PENDING_TCP_HANDSHAKES = 128;

// ---- terminal and addresses (issue 12) ----
/**
 * Largest mail a terminal downloads while it waits for its reply. The listing gives each mail's
 * size (IMAP RFC822.SIZE, POP3 LIST, the Maildir file size); a bigger mail under the reply
 * subject is quarantined without being fetched. A reply carries one block of at most
 * `MAX_BLOCK_BYTES` (about 22 KiB armored), so this leaves room for the headers relays add.
 */
export const MAX_TERMINAL_MAIL_BYTES = 64 * 1024;

// ---- host admission (issue 12) ----
/** How long after its signed creation a notice is acted on, in ms (older: deleted unused). */
export const NOTICE_MAX_AGE_MS = 60 * 60 * 1000;
/** Notices one reporter may send per hour; more are quarantined. */
export const NOTICES_PER_USER_PER_HOUR = 12;
/**
 * How many recent replies the host remembers per user (which peers each listed), so a notice
 * can flag only peers listed to its reporter within `NOTICE_MAX_AGE_MS`.
 */
export const MAX_LISTED_REPLIES = 4;
/**
 * A repeat of a request (same user, same session) that this host process answered less than
 * this long ago gets no second reply, in ms. Repeats count against the request rates always.
 */
export const REPEAT_REPLY_WINDOW_MS = 10 * 60 * 1000;
/** How many answered requests a host process remembers, to send no second reply to a repeat. */
export const MAX_REMEMBERED_REPLIES = 4096;
/** Requests one host answers per hour over all users and senders (configurable). */
export const DEFAULT_REQUESTS_PER_HOUR = 3000;
/**
 * New user ids (rows) one network may gain per hour (configurable): a flood of invented users
 * can overwrite at most this many of the oldest rows per hour.
 */
export const DEFAULT_NEW_ROWS_PER_HOUR = 250;

// ---- reliable UDP stream (issue 13) ----
/**
 * Segments a UDP link's receiver holds at most, out of order and unread together; the window
 * it advertises is this less what it holds (about 1.1 MiB at 1,200-byte datagrams). A segment
 * beyond it is dropped unread.
 */
export const STREAM_RECEIVE_WINDOW_SEGMENTS = 1024;
/** Segments a UDP link's sender queues (sent or not) before `send()` waits: about 4.5 MiB. */
export const STREAM_SEND_BUFFER_SEGMENTS = 4096;
/** Congestion window of a new UDP link, in segments (RFC 9002 §7.2: 10 datagrams). */
export const STREAM_INITIAL_WINDOW_SEGMENTS = 10;
/** Retransmission timeout before any RTT sample, in ms (RFC 6298 §2.1). */
export const STREAM_INITIAL_RTO_MS = 1_000;
/**
 * Floor of the retransmission timeout, in ms. RFC 6298 says 1 s; Linux uses 200 ms; QUIC's
 * probe timeout has none (1 ms granularity). Early expiries only probe (see below), so a
 * low floor costs a datagram, not the window.
 */
export const STREAM_MIN_RTO_MS = 20;
/**
 * Retransmission timer expiries in a row, without any segment acked, after which a UDP link's
 * sender declares persistent congestion (window to 2 segments); the ones before only probe.
 */
export const STREAM_PERSISTENT_TIMEOUTS = 3;
/** Ceiling of the retransmission timeout after doubling, in ms. */
export const STREAM_MAX_RTO_MS = 4_000;
/**
 * No authentic stream ack for this long while data is outstanding ends a UDP link with
 * `PeerError` `ETIMEOUT`, in ms.
 */
export const STREAM_STALL_TIMEOUT_MS = 20_000;
/** How long a receiver may hold back the ack of an in-order segment, in ms. */
export const STREAM_ACK_DELAY_MS = 5;
/** In-order segments a receiver takes before it acks at once (RFC 9000 §13.2.2: 2), at least. */
export const STREAM_ACK_EVERY_SEGMENTS = 2;
/**
 * In-order segments a receiver takes before it acks at once, at most: after a long run without
 * a gap (`ReliableReceiver.ackEvery`).
 */
export const STREAM_ACK_EVERY_MAX_SEGMENTS = 32;
/**
 * Best-effort datagrams (`PeerLink.receiveDatagram`) a UDP link holds unread; when full, the
 * oldest is dropped for the newest.
 */
export const STREAM_MAX_QUEUED_DATAGRAMS = 64;

// ---- port mapping (issue 13) ----
/** UDP port of a gateway's NAT-PMP and PCP server (RFC 6886 §3, RFC 6887 §19.1). */
export const PORT_MAPPING_SERVER_PORT = 5351;
/** First NAT-PMP retransmission timeout, in ms; it doubles after every request (RFC 6886 §3.1). */
export const NAT_PMP_INITIAL_RTO_MS = 250;
/** NAT-PMP requests sent before giving up: 9 requests span 250 ms … 64 s (RFC 6886 §3.1). */
export const NAT_PMP_MAX_REQUESTS = 9;
/** PCP initial retransmission time IRT, in ms (RFC 6887 §8.1.1). */
export const PCP_IRT_MS = 3_000;
/** PCP maximum retransmission time MRT, in ms (RFC 6887 §8.1.1). */
export const PCP_MRT_MS = 1_024_000;
/**
 * PCP requests sent before giving up. RFC 6887 §8.1.1 sets no count (MRC 0) for a client that
 * needs the mapping; a terminal gathering candidates stops after these (3 s + 6 s + 12 s + 24 s).
 */
export const PCP_MAX_REQUESTS = 4;
/** Largest PCP message (RFC 6887 §7); a longer datagram from the gateway is ignored. */
export const PCP_MAX_MESSAGE_BYTES = 1_100;
/** Mapping lifetime asked for, in seconds (routers may grant less). */
export const PORT_MAPPING_LIFETIME_S = 7_200;
/** Largest lifetime a router may grant that is believed, in seconds (UPnP IGD v2's 604800). */
export const PORT_MAPPING_MAX_LIFETIME_S = 604_800;
/**
 * Shortest wait between two renewals, in ms: a router granting a tiny lifetime cannot make the
 * terminal send requests in a loop. Renewal is due at half the lifetime (RFC 6886 §3.3).
 */
export const PORT_MAPPING_MIN_RENEW_MS = 5_000;
/** Time one protocol gets to answer before the mapper tries the next, in ms. */
export const PORT_MAPPING_PROTOCOL_TIMEOUT_MS = 4_000;
/** Largest UPnP device description read from the gateway (miniupnpd's is under 4 KiB). */
export const UPNP_MAX_DESCRIPTION_BYTES = 64 * 1024;
/** Largest UPnP SOAP response read from the gateway. */
export const UPNP_MAX_SOAP_BYTES = 16 * 1024;
/** Deepest element nesting accepted in UPnP XML. */
export const UPNP_MAX_XML_DEPTH = 32;
/** Most elements accepted in one UPnP XML document. */
export const UPNP_MAX_XML_ELEMENTS = 2_048;
/** Time one UPnP HTTP request (description or SOAP action) may take, in ms. */
export const UPNP_HTTP_TIMEOUT_MS = 5_000;
/** UDP port SSDP searches go to (UPnP Device Architecture 1.1 §1.3.2). */
export const SSDP_PORT = 1900;
/** SSDP's multicast group (UPnP Device Architecture 1.1 §1.1.2). */
export const SSDP_MULTICAST_ADDRESS = "239.255.255.250";
/** MX of a multicast search: devices answer within this many seconds (1 to 5, UDA 1.1). */
export const SSDP_MX_S = 1;
/** Search requests sent to each target (UDP may lose one; UDA 1.1 suggests more than one). */
export const SSDP_SEARCH_REQUESTS = 2;
/**
 * Wait after each search request, in ms: the MX delay and a round trip. With
 * {@link SSDP_SEARCH_REQUESTS} the search ends after 3 s without a usable answer.
 */
export const SSDP_SEARCH_WAIT_MS = 1_500;
/** Largest SSDP answer read (a router's is ~300 bytes); longer datagrams are dropped unread. */
export const SSDP_MAX_ANSWER_BYTES = 2_048;

// ---- candidates and introductions (issue 13) ----

/** Introductions the host mails one target (row) per hour at most; more are not sent. */
export const INTRODUCTIONS_PER_TARGET_PER_HOUR = 6;
/** Introductions one host mails per hour over all targets (they count as mail it sends). */
export const INTRODUCTIONS_PER_HOUR = 3000;
/**
 * How long after the host sends an introduction the punch window opens, in ms: at once, since the
 * introduced terminal punches as soon as the mail arrives (docs/nat.md "The terminal punches").
 */
export const PUNCH_WINDOW_DELAY_MS = 0;
/** How long a punch window lasts, in ms; an introduction past its end is stale. */
export const PUNCH_WINDOW_MS = 60_000;

// ---- hole punching (issue 13) ----
/** Most candidate endpoints one punch sends to; more is a `RangeError` (no scanning). */
export const PUNCH_MAX_CANDIDATES = 8;
/**
 * Most peer-reflexive endpoints (sources seen on the peer's probes, e.g. a symmetric NAT's new
 * port) one punch adds to its candidates; later ones are ignored.
 */
export const PUNCH_MAX_PEER_REFLEXIVE = 4;
/** Delay between the first datagrams to two successive candidates, in ms (ICE's Ta). */
export const PUNCH_STAGGER_MS = 50;
/**
 * Longest stagger a caller may ask for (`PunchOptions.staggerMs`), in ms: with
 * {@link PUNCH_MAX_CANDIDATES} candidates the last one still starts within the longest window.
 */
export const PUNCH_MAX_STAGGER_MS = 7_500;
/**
 * A peer's `relay` candidates start no earlier than this after the first candidate, in ms: the
 * direct ones get a head start (a punch through NATs takes 70–220 ms in the lab), so the first
 * handshake, which wins, is the relayed one mostly when no direct path answers.
 */
export const PUNCH_RELAY_DELAY_MS = 500;
/** How long a punch tries when the caller gives no window, in ms. */
export const PUNCH_DEFAULT_WINDOW_MS = 10_000;
/** Longest punch window accepted, in ms; a longer one is a `RangeError`. */
export const PUNCH_MAX_WINDOW_MS = 60_000;
/**
 * `terminal.punch_window` default, in ms: how long a terminal punches towards one peer after the
 * reply. It must cover the introduction mail reaching the peer (allowed up to
 * {@link PUNCH_MAX_WINDOW_MS}).
 */
export const DEFAULT_TERMINAL_PUNCH_WINDOW_MS = 15_000;
/** Shortest `terminal.punch_window` accepted, in ms. */
export const MIN_TERMINAL_PUNCH_WINDOW_MS = 1_000;
/**
 * TCP punch: how long a controlled side's connection may stay silent, in ms, before it sends
 * CONNECT itself: its connect reached a listener that is not punching for it, which answers any
 * CONNECT. A controlling peer sends its CONNECT at once, so more than a round trip of silence
 * means nobody will.
 */
export const PUNCH_TCP_QUIET_MS = 500;
/** Punches one listener runs at once (one per peer key); more are refused with `EPEER`. */
export const PUNCH_MAX_CONCURRENT = 16;

// ---- TURN relay client (issue 14) ----
/** Allocation lifetime asked of a TURN server, in seconds (RFC 8656 §3.2's default). */
export const TURN_DEFAULT_LIFETIME_S = 600;
/** How often a TURN client looks for allocations, permissions and channels to refresh, in ms. */
export const TURN_REFRESH_TICK_MS = 60_000;
/**
 * An allocation is refreshed once less than this is left of its lifetime (or half of it, when
 * the server granted a short one), in ms; with the tick above, at least a minute before it ends.
 */
export const TURN_ALLOCATION_MARGIN_MS = 120_000;
/** A permission (5 min, RFC 8656 §9) is refreshed once it is this old, in ms: by 4 min at most. */
export const TURN_PERMISSION_REFRESH_MS = 180_000;
/** A channel binding (10 min, RFC 8656 §12) is refreshed once it is this old, in ms: by 8 min. */
export const TURN_CHANNEL_REFRESH_MS = 420_000;
/** Peer addresses (permissions) one TURN allocation holds; more is `ERELAY`. */
export const TURN_MAX_PERMISSIONS = 64;
/** Channels one TURN allocation binds; more is `ERELAY` (the peer keeps Send indications). */
export const TURN_MAX_CHANNELS = 64;
/** Requests of one TURN transaction before it gives up (RTO 500 ms, doubling: 15.5 s). */
export const TURN_REQUESTS = 5;
/** Times one TURN transaction follows a 438 Stale Nonce with the new nonce. */
export const TURN_MAX_NONCE_RETRIES = 2;
/** Largest datagram relayed to or from a peer, in bytes; larger ones are refused or dropped. */
export const TURN_MAX_DATA_BYTES = 65_000;
/** Most `terminal.turn_servers`; more is a configuration error. */
export const MAX_TURN_SERVERS = 4;
/** Largest TURN message (a Data indication carries a peer's datagram), in bytes. */
export const TURN_MAX_MESSAGE_BYTES = 65_535;

// ---- moving a session to a better path (issue 14) ----
/**
 * How long a probe of a link's paths runs when the caller gives no window, and how long a path
 * the peer's challenge opened is challenged back, in ms.
 */
export const PATH_LEARNED_WINDOW_MS = 10_000;
/** Paths one link takes datagrams from (the first included); more are not admitted. */
export const PATH_MAX_PATHS = 8;
/** Outstanding PATH_CHALLENGE tokens one link remembers; the oldest is forgotten first. */
export const PATH_MAX_TOKENS = 4096;
/**
 * Auxiliary sockets a spray opens per mapping of the peer it aims at (docs/nat.md "One hard
 * NAT"): with 256 mappings open on the hard NAT towards the right one, 2048 random probes from
 * the other side hit one with probability 1 − (1 − 256/64512)^2048 ≈ 99.97 %.
 */
export const PATH_SPRAY_SOCKETS_PER_MAPPING = 256;
/** Auxiliary sockets one spray opens at most (two mappings aimed at). */
export const PATH_SPRAY_SOCKETS = 512;
/** Random ports one spray challenges in all. */
export const PATH_SPRAY_PROBES = 2048;
/** Addresses of the peer one spray scans (its NAT's addresses). */
export const PATH_SPRAY_ADDRESSES = 2;
/**
 * A spray's random probes leave `PATH_SPRAY_BURST` at a time every `PATH_SPRAY_PACE_MS`: 500 a
 * second, 2048 in about 4 s, without depending on millisecond timers.
 */
export const PATH_SPRAY_PACE_MS = 8;
/** Random probes per tick of a spray. */
export const PATH_SPRAY_BURST = 4;
/** How long a spray runs when the caller gives no window, in ms. */
export const PATH_SPRAY_WINDOW_MS = 10_000;
/** How often a link that moved to a direct path checks that it still hears the peer, in ms. */
export const PATH_WATCH_MS = 1_000;
/**
 * Silence on a direct path a link moved to after which it challenges that path, in ms (a live
 * peer answers at once; a quiet chat costs one small challenge every few seconds).
 */
export const PATH_QUIET_MS = 3_000;
/**
 * Silence after which a link falls back to the relayed path it left, in ms: well below the
 * reliable stream's stall timeout and the keepalive's idle timeout, so the session survives.
 */
export const PATH_DEAD_MS = 6_000;
/** Auxiliary sockets one listener holds at once (a spray's, and the winners of earlier ones). */
export const LISTENER_MAX_AUX_SOCKETS = 1024;
/**
 * `terminal.upgrade_interval` default, in ms: how often a terminal on a relayed session looks for
 * a direct path again (re-learns its mapping, tells the peer, probes).
 */
export const DEFAULT_UPGRADE_INTERVAL_MS = 30_000;
/** Shortest `terminal.upgrade_interval` accepted, in ms. */
export const MIN_UPGRADE_INTERVAL_MS = 1_000;
/** Longest `terminal.upgrade_interval` accepted, in ms. */
export const MAX_UPGRADE_INTERVAL_MS = 60 * 60 * 1000;

// The host's status page and metrics (docs/status.md "Limits"): what `HostStatus` keeps is
// bounded, since user ids, reasons and subjects come from mail.
/** Entries kept in each recent list (requests, replies, quarantines, deletions, errors). */
export const STATUS_RECENT_ENTRIES = 50;
/** Latency samples (request received → reply sent) kept for the plot and the quantiles. */
export const STATUS_LATENCY_SAMPLES = 200;
/** Requests waiting for their reply that are remembered for latency pairing (oldest dropped). */
export const STATUS_PENDING_REQUESTS = 1_000;
/** A reply more than this long after its request is not counted as a latency sample, in ms. */
export const STATUS_PENDING_MAX_AGE_MS = 10 * 60 * 1000;
/** Minutes of per-minute rate buckets kept (replies per minute over the last hour). */
export const STATUS_RATE_MINUTES = 60;
/** Longest user id, session id or code a status entry keeps, in characters (longer: cut). */
export const STATUS_ID_MAX_CHARS = 80;
/** Longest reason, message or subject a status entry keeps, in characters (longer: cut). */
export const STATUS_TEXT_MAX_CHARS = 200;
/** Distinct codes counted per counter (quarantined, errors); further codes count as `OTHER`. */
export const STATUS_MAX_CODES = 32;
/** Role leases (epoch and holder) whose end the status remembers, newest kept. */
export const STATUS_ROLE_LEASES = 16;
/** Control table rows the status page lists (newest first); the rest are only counted. */
export const STATUS_PAGE_ROWS = 200;
/** Longest request target (path and query) the status server reads, in characters. */
export const STATUS_MAX_URL_CHARS = 2_048;
/** Requests the status server handles at once; more get 503 (each may read the table). */
export const STATUS_MAX_CONCURRENT = 8;
/** Shortest status token accepted, in characters. */
export const STATUS_MIN_TOKEN_CHARS = 16;
/** How often the status page reloads itself, in seconds. */
export const STATUS_REFRESH_SECONDS = 5;
/** Default address of the status server (`host --status` without an address). */
export const STATUS_DEFAULT_ADDRESS = "127.0.0.1:8787";

// ---- sending caps (issue 17) ----
/** Largest `max_per_hour` / `max_per_day` of a sending account (bounds the sending ledger). */
export const MAX_SEND_CAP = 100_000;
/** Largest autoconfig document (Thunderbird `config-v1.1.xml`) `mailpeer init` reads, in bytes. */
export const AUTOCONFIG_MAX_BYTES = 64 * 1024;
/** Most XML elements in one autoconfig document; more and it is refused unread. */
export const AUTOCONFIG_MAX_ELEMENTS = 2_000;
/** Deepest nesting of XML elements in one autoconfig document. */
export const AUTOCONFIG_MAX_DEPTH = 16;
/** How long one discovery step may take (an autoconfig fetch, a DNS query), in ms. */
export const DISCOVERY_STEP_TIMEOUT_MS = 5_000;
/** How many same-host redirects an autoconfig fetch follows (another host's: none). */
export const DISCOVERY_MAX_REDIRECTS = 3;
/** Most server candidates one discovery source may offer; the rest are dropped. */
export const DISCOVERY_MAX_CANDIDATES = 16;
/** How long probing one candidate server (connect, TLS, greeting, login) may take, in ms. */
export const DISCOVERY_PROBE_TIMEOUT_MS = 8_000;

/**
 * Most response lines the cron probe of an IMAP mailbox (src/mail/imap/probe.ts) takes for one
 * command, its LIST of mailboxes above all: past it, a server (or an account of absurdly many
 * folders) gets the full path instead of the probe's memory.
 */
export const IMAP_PROBE_MAX_RESPONSES = 10_000;

/**
 * How long a member's host role lasts unless renewed (docs/decisions.md "First receiver becomes
 * host"); the holder renews it every third of this (configurable as host.role_lease).
 */
export const DEFAULT_ROLE_LEASE_MS = 10 * 60 * 1000;
/** Shortest and longest host role lease a member accepts or configures, in ms. */
export const MIN_ROLE_LEASE_MS = 30_000;
export const MAX_ROLE_LEASE_MS = 60 * 60 * 1000;
/** Most role mails a member reads in one pass (the rest wait; a flood drains pass by pass). */
export const MAX_ROLE_MAILS = 16;
/** Largest role lease line (the signed JSON before base64url), in bytes. */
export const MAX_ROLE_LEASE_BYTES = 512;
