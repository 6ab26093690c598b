/* Lock-step TFTP data pump: one read transfer at windowsize 1, run with the GIL released.
 *
 * Why C: a stop-and-wait transfer is bound by its round trip, and each round trip holds one
 * turn of the server (RFC 1350 section 2). In Python that turn costs ~4-8 us of interpreter
 * and event-loop time per block, which made lock-step (what every PXE ROM and pxelinux use)
 * slower than tftpd-hpa. Here a turn is recv + send, no poll: the socket is blocking with
 * SO_RCVTIMEO as the retransmission timer. Negotiation, windowed transfers, uploads, virtual
 * files and every event stay in Python (session.py holds the same rules as this loop).
 *
 * Retransmission as in session.py: timeout estimated from round trips (RFC 6298, no samples
 * from resent blocks: Karn), doubled on each expiry up to the client's timeout option
 * (RFC 2349), never waiting past `giveup` seconds of silence (`first_giveup` before the first
 * ACK: a request from a forged address is never answered, docs/SECURITY.md); a duplicate ACK of the previous
 * block resends only when it comes well after our last send (else it is an echo: the
 * Sorcerer's Apprentice bug, RFC 1123 4.2.3.1).
 * Block numbers are 16 bits on the wire and roll over (docs/FIELD-NOTES.md).
 *
 * The caller owns both descriptors and closes them only after serve() returned; cancel() (from
 * another thread) sets a flag and shuts the socket down for reading, which wakes recv().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define OP_DATA 3
#define OP_ACK 4
#define OP_ERROR 5
#define CHUNK (128 * 1024)     /* read-ahead: one pread per ~90 blocks of 1428 bytes */
#define RTO_MIN 0.05           /* as session.RTO_MIN */
#define SAMPLE_EVERY 0.01      /* as session.SAMPLE_EVERY */
#define DUP_GAP_MIN 0.01       /* as session.DUP_GAP_MIN */

/* Result codes, mirrored in pump.py. */
enum { PUMP_DONE, PUMP_PEER_ERROR, PUMP_TIMEOUT, PUMP_UNREACHABLE, PUMP_READ_ERROR,
       PUMP_SEND_ERROR, PUMP_CANCELLED };

/* Shared with Python (a bytearray of 4 int64): progress read by the event loop. */
enum { STAT_ACKED, STAT_RETRANSMITS, STAT_CANCEL, STAT_SRTT_US, STAT_COUNT };

typedef struct {
    int sock, fd;
    int64_t offset, size, nblocks;
    int blksize;
    volatile int64_t *stats;
    double rto, rto_cap, giveup, first_giveup, srtt, rttvar, sampled_at, timeout_set;
    int64_t acked, retransmits;
    uint8_t *chunk, *pkt;
    int64_t cstart, cend;
    int pktlen, peer_code, final_ack_lost;
    char message[300];
    /* the block in flight */
    int64_t block;
    int timeouts, resent;  /* consecutive expiries; sent more than once (no RTT sample: Karn) */
    double sent_at, last_send, deadline, last_progress;
} pump_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cancelled(pump_t *p) { return __atomic_load_n(&p->stats[STAT_CANCEL], __ATOMIC_RELAXED) != 0; }

static void publish(pump_t *p) {
    __atomic_store_n(&p->stats[STAT_ACKED], p->acked, __ATOMIC_RELAXED);
    __atomic_store_n(&p->stats[STAT_RETRANSMITS], p->retransmits, __ATOMIC_RELAXED);
}

/* SO_RCVTIMEO is the retransmission timer; a syscall only when it changes by >= 0.5 ms. */
static void wait_at_most(pump_t *p, double secs) {
    if (secs < 0.0005) secs = 0.0005;
    if (secs - p->timeout_set < 0.0005 && p->timeout_set - secs < 0.0005) return;
    struct timeval tv;
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    if (setsockopt(p->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0) p->timeout_set = secs;
}

static void sample(pump_t *p, double r, double now) {
    p->sampled_at = now;
    if (p->srtt < 0) {
        p->srtt = r;
        p->rttvar = r / 2;
    } else {
        double d = p->srtt - r;
        p->rttvar = 0.75 * p->rttvar + 0.25 * (d < 0 ? -d : d);
        p->srtt = 0.875 * p->srtt + 0.125 * r;
    }
    double rto = p->srtt + 4 * p->rttvar;
    p->rto = rto < RTO_MIN ? RTO_MIN : (rto > p->rto_cap ? p->rto_cap : rto);
    __atomic_store_n(&p->stats[STAT_SRTT_US], (int64_t)(p->srtt * 1e6), __ATOMIC_RELAXED);
}

static double backoff(pump_t *p, int timeouts) {
    if (!timeouts) return p->rto;
    double t = p->rto * (double)(1 << (timeouts < 16 ? timeouts : 16));
    return t < RTO_MIN ? RTO_MIN : (t > p->rto_cap ? p->rto_cap : t);
}

/* Build DATA p->block in p->pkt; -1 with p->message set when the file cannot be read. */
static int build(pump_t *p) {
    int64_t block = p->block;
    int64_t pos = (block - 1) * p->blksize;
    int64_t rest = p->size - pos;
    int len = rest > p->blksize ? p->blksize : (int)rest;
    if (pos < p->cstart || pos + len > p->cend) {
        int64_t want = p->size - pos < CHUNK ? p->size - pos : CHUNK;
        if (want < len) want = len;
        ssize_t got = want ? pread(p->fd, p->chunk, (size_t)want, (off_t)(p->offset + pos)) : 0;
        if (got < 0) {
            snprintf(p->message, sizeof p->message, "read error: %s", strerror(errno));
            return -1;
        }
        if (got != want) {
            snprintf(p->message, sizeof p->message,
                     "file shrank while being served (read %zd of %lld bytes at %lld)", got,
                     (long long)want, (long long)pos);
            return -1;
        }
        p->cstart = pos;
        p->cend = pos + want;
    }
    p->pkt[0] = 0;
    p->pkt[1] = OP_DATA;
    p->pkt[2] = (uint8_t)((block >> 8) & 0xFF);
    p->pkt[3] = (uint8_t)(block & 0xFF);
    memcpy(p->pkt + 4, p->chunk + (pos - p->cstart), (size_t)len);
    p->pktlen = 4 + len;
    return 0;
}

/* 0 sent (or dropped locally: the timer resends), 1 refused (ICMP), -1 other error. */
static int transmit(pump_t *p) {
    if (send(p->sock, p->pkt, (size_t)p->pktlen, 0) >= 0) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR) return 0;
    if (errno == ECONNREFUSED) return 1;
    snprintf(p->message, sizeof p->message, "send failed: %s", strerror(errno));
    return -1;
}

static int gone(pump_t *p) {
    if (p->block == p->nblocks) {
        /* Every block went out and the client closed its port: it got the last one and its
           final ACK was lost (RFC 1350 section 6: the last ACK is never confirmed). */
        p->acked = p->nblocks;
        p->final_ack_lost = 1;
        return PUMP_DONE;
    }
    snprintf(p->message, sizeof p->message, "client unreachable: %s", strerror(ECONNREFUSED));
    return PUMP_UNREACHABLE;
}

/* Seconds of silence allowed now: until the client's first ACK, first_giveup. */
static double silence(const pump_t *p) { return p->acked > 0 ? p->giveup : p->first_giveup; }

/* Send p->block (first time or again); CONTINUE, or the code that ends the transfer. */
#define CONTINUE (-1)
static int put(pump_t *p, double now, int again) {
    int r = transmit(p);
    if (r != 0) return r > 0 ? gone(p) : PUMP_SEND_ERROR;
    if (again) {
        p->retransmits++;
        p->resent = 1;
        publish(p);
    } else {
        p->sent_at = now;
        p->resent = 0;
    }
    p->last_send = now;
    p->deadline = now + backoff(p, p->timeouts);
    /* Never wait past the give-up moment: a silent client's slot is freed on time (SECURITY.md). */
    if (p->deadline > p->last_progress + silence(p)) p->deadline = p->last_progress + silence(p);
    return CONTINUE;
}

static int run(pump_t *p) {
    uint8_t in[516];
    int r;
    double now = now_s();

    p->block = 1;
    p->last_progress = now;
    if (build(p) < 0) return PUMP_READ_ERROR;
    if ((r = put(p, now, 0)) != CONTINUE) return r;
    for (;;) {
        wait_at_most(p, p->deadline - now);
        ssize_t n = recv(p->sock, in, sizeof in, 0);
        now = now_s();
        if (cancelled(p)) return PUMP_CANCELLED;
        if (n < 0 && errno == ECONNREFUSED) return gone(p);
        if (n >= 4 && in[0] == 0 && in[1] == OP_ACK) {
            unsigned got = ((unsigned)in[2] << 8) | in[3];
            if (got == (unsigned)(p->block & 0xFFFF)) {
                if (!p->resent && now - p->sampled_at >= SAMPLE_EVERY) sample(p, now - p->sent_at, now);
                p->acked = p->block;
                p->timeouts = 0;
                p->last_progress = now;
                publish(p);
                if (p->block == p->nblocks) return PUMP_DONE;
                p->block++;
                if (build(p) < 0) return PUMP_READ_ERROR;
                if ((r = put(p, now, 0)) != CONTINUE) return r;
                continue;
            }
            if (got == (unsigned)((p->block - 1) & 0xFFFF)) {
                /* The client resent its ACK: our block was lost, or this is an echo. */
                double gap = p->srtt < 0 ? p->rto : (2 * p->srtt > DUP_GAP_MIN ? 2 * p->srtt : DUP_GAP_MIN);
                if (now - p->last_send >= gap && (r = put(p, now, 1)) != CONTINUE) return r;
            }
        } else if (n >= 4 && in[0] == 0 && in[1] == OP_ERROR) {
            size_t len = strnlen((const char *)in + 4, (size_t)n - 4);
            p->peer_code = (in[2] << 8) | in[3];
            snprintf(p->message, sizeof p->message, "%.*s", (int)len, (const char *)in + 4);
            return PUMP_PEER_ERROR;
        }
        /* Anything else from the client's TID is ignored: a stray packet must not end a boot. */
        if (now < p->deadline) continue;
        if (now - p->last_progress >= silence(p)) {
            snprintf(p->message, sizeof p->message, "timed out waiting for ACK of block %lld (%d retransmissions)",
                     (long long)p->block, p->timeouts);
            return PUMP_TIMEOUT;
        }
        p->timeouts++;
        if ((r = put(p, now, 1)) != CONTINUE) return r;
    }
}

PyDoc_STRVAR(serve_doc,
"serve(sock, fd, offset, size, blksize, stats, rto, rto_cap, giveup, first_giveup=giveup) -> (code, acked, retransmits, peer_code, message: bytes, final_ack_lost)\n\n"
"Send bytes offset..offset+size of fd over the connected UDP socket, lock-step, from block 1.\n"
"first_giveup: seconds of silence before the client's first ACK (a client never heard from).\n"
"stats: a writable buffer of 4 int64 (acked, retransmits, cancel flag, srtt in us).");

static PyObject *pump_serve(PyObject *self, PyObject *args) {
    int sock, fd, blksize;
    long long offset, size;
    Py_buffer stats;
    double rto, rto_cap, giveup, first_giveup = -1;
    if (!PyArg_ParseTuple(args, "iiLLiw*ddd|d", &sock, &fd, &offset, &size, &blksize, &stats, &rto,
                          &rto_cap, &giveup, &first_giveup))
        return NULL;
    if (stats.len < (Py_ssize_t)(STAT_COUNT * sizeof(int64_t)) || ((uintptr_t)stats.buf % 8) != 0) {
        PyBuffer_Release(&stats);
        PyErr_SetString(PyExc_ValueError, "stats must be an 8-byte aligned buffer of 4 int64");
        return NULL;
    }
    if (blksize < 8 || blksize > 65464 || size < 0 || offset < 0) {
        PyBuffer_Release(&stats);
        PyErr_SetString(PyExc_ValueError, "blksize must be 8..65464, size and offset >= 0");
        return NULL;
    }
    pump_t p;
    memset(&p, 0, sizeof p);
    p.sock = sock;
    p.fd = fd;
    p.offset = offset;
    p.size = size;
    p.blksize = blksize;
    p.nblocks = size / blksize + 1; /* the last block is short, maybe empty */
    p.stats = (volatile int64_t *)stats.buf;
    p.rto_cap = rto_cap > RTO_MIN ? rto_cap : RTO_MIN;
    p.rto = rto < RTO_MIN ? RTO_MIN : (rto > p.rto_cap ? p.rto_cap : rto);
    p.giveup = giveup;
    p.first_giveup = first_giveup < 0 || first_giveup > giveup ? giveup : first_giveup;
    p.srtt = -1;
    p.sampled_at = -1e9;
    p.timeout_set = -1;
    p.cend = -1;
    p.chunk = PyMem_RawMalloc(CHUNK > blksize ? CHUNK : (size_t)blksize);
    p.pkt = PyMem_RawMalloc((size_t)blksize + 4);
    if (!p.chunk || !p.pkt) {
        PyMem_RawFree(p.chunk);
        PyMem_RawFree(p.pkt);
        PyBuffer_Release(&stats);
        return PyErr_NoMemory();
    }
    int flags = fcntl(sock, F_GETFL);
    int code;
    Py_BEGIN_ALLOW_THREADS
    if (flags >= 0 && (flags & O_NONBLOCK)) fcntl(sock, F_SETFL, flags & ~O_NONBLOCK);
    code = run(&p);
    publish(&p);
    if (flags >= 0 && (flags & O_NONBLOCK)) fcntl(sock, F_SETFL, flags);
    struct timeval none = {0, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(p.chunk);
    PyMem_RawFree(p.pkt);
    PyBuffer_Release(&stats);
    return Py_BuildValue("(iLLiy#O)", code, (long long)p.acked, (long long)p.retransmits, p.peer_code,
                         p.message, (Py_ssize_t)strlen(p.message), p.final_ack_lost ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"serve", pump_serve, METH_VARARGS, serve_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pump", "Lock-step TFTP data pump (see pump.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* API 2: serve() takes first_giveup. pump.py uses an older build as not built at all. */
PyMODINIT_FUNC PyInit__pump(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "API", 2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
