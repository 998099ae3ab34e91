/* loadgen: replays pre-built HTTP/1.1 requests over N keep-alive connections and reports
 * the answers per second and the latency of each request. Closed loop: each connection has
 * one request in flight and sends the next one as soon as the answer is in, so the figure
 * is what the server sustains at that concurrency. One thread, epoll, plain sockets: on
 * loopback it costs the machine far less than the server it measures (it prints its own
 * CPU share so that this can be checked).
 *
 * Usage: loadgen [-c CONNS] [-d SECONDS] [-w WARMUP_S] [-t TIMEOUT_S] HOST PORT FILE
 *
 * FILE holds records "<byte count>\n<raw request>": each raw request is sent as is (it
 * must carry Content-Length and no "Connection: close") and each is used once, in order.
 * bench/ingest_bench.py writes it (signed POST /v1/orders, a new order each).
 *
 *   -c CONNS      concurrent keep-alive connections (default 1)
 *   -d SECONDS    measured time after the warm-up; 0 = until every request is answered
 *                 (default 5)
 *   -w WARMUP_S   answers completed in the first WARMUP_S seconds are checked but not
 *                 counted (default 0)
 *   -t TIMEOUT_S  give up on a request unanswered after this long (default 30)
 *
 * Answers must be 202 with a Content-Length body. One line on stdout, key=value:
 *   conns sent answered counted non202 errors reconnects seconds rps p50_ms p90_ms p99_ms
 *   max_ms cpu_pct exhausted
 * ("exhausted=1": FILE ran out before the time was up, or -d 0; the rate is then over the
 * time from the end of the warm-up to the last answer). The first unexpected answer or
 * error goes to stderr. Exit status 0 only when every answer was 202 and no connection
 * failed; 1 otherwise; 2 for bad usage or set-up.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define RECV_CAP (64 * 1024)

struct req {
        const char *p;
        size_t len;
};

enum conn_state { C_CONNECTING, C_SENDING, C_READING, C_IDLE, C_DEAD };

struct conn {
        int fd;
        enum conn_state state;
        size_t req;    /* index of the request in flight */
        size_t sent;   /* bytes of it written so far */
        double t0;     /* when its first byte was written */
        bool want_out; /* EPOLLOUT is in the interest set */
        char *buf;
        size_t have;
};

static struct {
        struct req *reqs;
        size_t nreq, next;
        struct conn *conns;
        int nconns, epfd;
        struct addrinfo *addr;
        double t_measure, t_end, timeout_s;
        bool stopping, exhausted;
        double *lat_ms; /* latencies of the counted answers */
        size_t sent, answered, counted, non202, errors, reconnects;
        double last_done;
        bool reported;
} g;

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: loadgen [-c CONNS] [-d SECONDS] [-w WARMUP_S] [-t TIMEOUT_S] HOST PORT "
                "FILE\n  FILE: records \"<byte count>\\n<raw HTTP request>\"\n");
        exit(2);
}

/* The first problem of each kind is shown; the rest are only counted. */
static void report(const char *what, const struct conn *c, const char *detail, size_t len)
{
        if (g.reported)
                return;
        g.reported = true;
        fprintf(stderr, "loadgen: %s (connection %d, request %zu)", what,
                c ? (int)(c - g.conns) : -1, c ? c->req : 0);
        if (detail && len)
                fprintf(stderr, ": %.*s", (int)(len > 600 ? 600 : len), detail);
        fputc('\n', stderr);
}

static int load_file(const char *path)
{
        struct stat st;
        const char *p, *end;
        size_t cap = 0;
        int fd = open(path, O_RDONLY);

        if (fd < 0 || fstat(fd, &st) != 0) {
                fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (st.st_size == 0) {
                fprintf(stderr, "loadgen: %s: empty\n", path);
                return -1;
        }
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (p == MAP_FAILED) {
                fprintf(stderr, "loadgen: %s: mmap: %s\n", path, strerror(errno));
                return -1;
        }
        end = p + st.st_size;
        while (p < end) {
                size_t len = 0;

                if (*p < '0' || *p > '9')
                        goto bad;
                while (p < end && *p >= '0' && *p <= '9')
                        len = len * 10 + (size_t)(*p++ - '0');
                if (p >= end || *p++ != '\n' || len == 0 || (size_t)(end - p) < len)
                        goto bad;
                if (g.nreq == cap) {
                        cap = cap ? cap * 2 : 4096;
                        g.reqs = realloc(g.reqs, cap * sizeof *g.reqs);
                        if (!g.reqs) {
                                fprintf(stderr, "loadgen: out of memory\n");
                                return -1;
                        }
                }
                g.reqs[g.nreq].p = p;
                g.reqs[g.nreq].len = len;
                g.nreq++;
                p += len;
        }
        return 0;
bad:
        fprintf(stderr, "loadgen: %s: record %zu: expected \"<byte count>\\n<bytes>\"\n", path,
                g.nreq + 1);
        return -1;
}

static void set_events(struct conn *c, bool out)
{
        struct epoll_event ev = {.events = out ? EPOLLIN | EPOLLOUT : EPOLLIN, .data.ptr = c};

        if (c->want_out == out)
                return;
        c->want_out = out;
        epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct conn *c, enum conn_state state)
{
        if (c->fd >= 0) {
                epoll_ctl(g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
        }
        c->fd = -1;
        c->state = state;
}

static void conn_fail(struct conn *c, const char *what, const char *detail, size_t len)
{
        report(what, c, detail, len);
        g.errors++;
        conn_close(c, C_DEAD);
}

static int conn_open(struct conn *c)
{
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT};
        int one = 1;

        c->fd = socket(g.addr->ai_family, g.addr->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       g.addr->ai_protocol);
        if (c->fd < 0)
                return -1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, g.addr->ai_addr, g.addr->ai_addrlen) != 0 && errno != EINPROGRESS) {
                close(c->fd);
                c->fd = -1;
                return -1;
        }
        c->state = C_CONNECTING;
        c->t0 = now_s();
        c->want_out = true;
        c->have = 0;
        ev.data.ptr = c;
        if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
                close(c->fd);
                c->fd = -1;
                return -1;
        }
        return 0;
}

/* Writes what is left of the request in flight; false when the connection failed. */
static bool conn_write(struct conn *c)
{
        const struct req *r = &g.reqs[c->req];

        while (c->sent < r->len) {
                ssize_t n = send(c->fd, r->p + c->sent, r->len - c->sent, MSG_NOSIGNAL);

                if (n > 0) {
                        c->sent += (size_t)n;
                } else if (n < 0 && errno == EINTR) {
                        continue;
                } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        set_events(c, true);
                        return true;
                } else {
                        conn_fail(c, "send failed", strerror(errno), strlen(strerror(errno)));
                        return false;
                }
        }
        c->state = C_READING;
        set_events(c, false);
        return true;
}

static void next_request(struct conn *c, double now)
{
        if (g.stopping || g.next >= g.nreq) {
                if (!g.stopping && g.next >= g.nreq)
                        g.exhausted = true;
                c->state = C_IDLE;
                set_events(c, false);
                return;
        }
        c->req = g.next++;
        c->sent = 0;
        c->have = 0;
        c->t0 = now;
        c->state = C_SENDING;
        g.sent++;
        conn_write(c);
}

/* A complete response in b[0..n): its length; 0 when more is needed; -1 when malformed or
 * not in a form this tool reads (no Content-Length). */
static long parse_response(const char *b, size_t n, int *status, bool *close_after)
{
        const char *end = memmem(b, n, "\r\n\r\n", 4), *line, *eol;
        size_t hlen;
        long clen = -1;

        if (!end)
                return n >= RECV_CAP ? -1 : 0;
        hlen = (size_t)(end - b) + 4;
        if (hlen < 16 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
                return -1;
        *status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
        *close_after = b[7] == '0';
        for (line = (const char *)memchr(b, '\n', hlen) + 1; line < end; line = eol + 1) {
                eol = memchr(line, '\n', (size_t)(end + 2 - line));
                if (!eol)
                        break;
                if (strncasecmp(line, "content-length:", 15) == 0) {
                        clen = strtol(line + 15, NULL, 10);
                } else if (strncasecmp(line, "connection:", 11) == 0) {
                        const char *v = line + 11;

                        while (*v == ' ')
                                v++;
                        if (strncasecmp(v, "close", 5) == 0)
                                *close_after = true;
                        else if (strncasecmp(v, "keep-alive", 10) == 0)
                                *close_after = false;
                } else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
                        return -1;
                }
        }
        if (clen < 0 || (size_t)clen > RECV_CAP)
                return -1;
        if (n < hlen + (size_t)clen)
                return hlen + (size_t)clen > RECV_CAP ? -1 : 0;
        return (long)(hlen + (size_t)clen);
}

static void on_answer(struct conn *c, int status, const char *body, size_t len, double now)
{
        g.answered++;
        if (status != 202) {
                g.non202++;
                report("answer other than 202", c, body, len);
                return;
        }
        if (now >= g.t_measure && now <= g.t_end) {
                g.lat_ms[g.counted++] = (now - c->t0) * 1000.0;
                g.last_done = now;
        }
}

static void conn_read(struct conn *c, double now)
{
        for (;;) {
                ssize_t n = recv(c->fd, c->buf + c->have, RECV_CAP - c->have, 0);
                long total;
                int status = 0;
                bool close_after = false;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                        return;
                if (n < 0) {
                        conn_fail(c, "recv failed", strerror(errno), strlen(strerror(errno)));
                        return;
                }
                if (n == 0) {
                        if (c->state == C_IDLE) {
                                conn_close(c, C_IDLE);
                                return;
                        }
                        conn_fail(c, "connection closed by the server before the answer", c->buf,
                                  c->have);
                        return;
                }
                if (c->state != C_READING && c->state != C_SENDING) {
                        conn_fail(c, "data from the server with no request in flight", c->buf,
                                  (size_t)n);
                        return;
                }
                c->have += (size_t)n;
                total = parse_response(c->buf, c->have, &status, &close_after);
                if (total < 0) {
                        conn_fail(c, "unreadable answer (Content-Length is required)", c->buf,
                                  c->have);
                        return;
                }
                if (total == 0)
                        continue;
                if ((size_t)total != c->have) {
                        conn_fail(c, "more bytes than one answer", c->buf, c->have);
                        return;
                }
                if (status >= 100 && status < 200) { /* interim answer: wait for the real one */
                        c->have = 0;
                        continue;
                }
                on_answer(c, status, c->buf, c->have, now);
                c->have = 0;
                if (close_after) {
                        conn_close(c, C_IDLE);
                        if (g.stopping || g.next >= g.nreq)
                                return;
                        g.reconnects++;
                        if (conn_open(c) != 0)
                                conn_fail(c, "reconnect failed", strerror(errno),
                                          strlen(strerror(errno)));
                        return;
                }
                next_request(c, now);
                return;
        }
}

static void on_event(struct conn *c, uint32_t events, double now)
{
        if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;

                if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                        conn_fail(c, "connect failed", strerror(err), strlen(strerror(err)));
                        return;
                }
                next_request(c, now);
                return;
        }
        if ((events & EPOLLOUT) && c->state == C_SENDING && !conn_write(c))
                return;
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(c, now);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return (x > y) - (x < y);
}

/* nearest rank */
static double pct(double p)
{
        size_t k;

        if (!g.counted)
                return 0;
        k = (size_t)(p * (double)g.counted + 0.999999);
        if (k < 1)
                k = 1;
        if (k > g.counted)
                k = g.counted;
        return g.lat_ms[k - 1];
}

int main(int argc, char **argv)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
        struct epoll_event evs[256];
        double seconds = 5, warmup = 0, t_start, cpu0, window;
        int conns = 1, opt, i, rc;

        g.timeout_s = 30;
        while ((opt = getopt(argc, argv, "c:d:w:t:")) != -1) {
                switch (opt) {
                case 'c':
                        conns = atoi(optarg);
                        break;
                case 'd':
                        seconds = atof(optarg);
                        break;
                case 'w':
                        warmup = atof(optarg);
                        break;
                case 't':
                        g.timeout_s = atof(optarg);
                        break;
                default:
                        usage();
                }
        }
        if (argc - optind != 3 || conns < 1 || conns > 10000 || seconds < 0 || warmup < 0 ||
            g.timeout_s <= 0)
                usage();
        if ((rc = getaddrinfo(argv[optind], argv[optind + 1], &hints, &g.addr)) != 0) {
                fprintf(stderr, "loadgen: %s:%s: %s\n", argv[optind], argv[optind + 1],
                        gai_strerror(rc));
                return 2;
        }
        if (load_file(argv[optind + 2]) != 0)
                return 2;
        g.lat_ms = malloc(g.nreq * sizeof *g.lat_ms);
        g.conns = calloc((size_t)conns, sizeof *g.conns);
        g.epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!g.lat_ms || !g.conns || g.epfd < 0) {
                fprintf(stderr, "loadgen: set-up failed: %s\n", strerror(errno));
                return 2;
        }
        g.nconns = conns;

        cpu0 = cpu_s();
        t_start = now_s();
        g.t_measure = t_start + warmup;
        g.t_end = seconds > 0 ? g.t_measure + seconds : 1e300;
        for (i = 0; i < conns; i++) {
                struct conn *c = &g.conns[i];

                c->fd = -1;
                c->buf = malloc(RECV_CAP);
                if (!c->buf || conn_open(c) != 0) {
                        fprintf(stderr, "loadgen: connection %d: %s\n", i, strerror(errno));
                        return 2;
                }
        }

        for (;;) {
                int n = epoll_wait(g.epfd, evs, 256, 50);
                double now = now_s();
                bool busy = false;

                if (n < 0 && errno != EINTR) {
                        fprintf(stderr, "loadgen: epoll_wait: %s\n", strerror(errno));
                        return 2;
                }
                for (i = 0; i < n; i++)
                        on_event(evs[i].data.ptr, evs[i].events, now);
                if (!g.stopping && now >= g.t_end)
                        g.stopping = true;
                for (i = 0; i < conns; i++) {
                        struct conn *c = &g.conns[i];

                        if (c->state == C_CONNECTING || c->state == C_SENDING ||
                            c->state == C_READING) {
                                busy = true;
                                if (now - c->t0 > g.timeout_s)
                                        conn_fail(c,
                                                  c->state == C_CONNECTING
                                                      ? "not connected within the timeout"
                                                      : "no answer within the timeout",
                                                  NULL, 0);
                        }
                }
                if (!busy)
                        break;
        }

        window = seconds > 0 && !g.exhausted ? seconds : g.last_done - g.t_measure;
        if (window < 0)
                window = 0;
        qsort(g.lat_ms, g.counted, sizeof *g.lat_ms, cmp_double);
        printf("conns=%d sent=%zu answered=%zu counted=%zu non202=%zu errors=%zu "
               "reconnects=%zu seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
               "max_ms=%.3f cpu_pct=%.1f exhausted=%d\n",
               conns, g.sent, g.answered, g.counted, g.non202, g.errors, g.reconnects, window,
               window > 0 ? (double)g.counted / window : 0.0, pct(0.50), pct(0.90), pct(0.99),
               g.counted ? g.lat_ms[g.counted - 1] : 0.0,
               100.0 * (cpu_s() - cpu0) / (now_s() - t_start), g.exhausted ? 1 : 0);
        return g.non202 || g.errors || g.answered == 0 ? 1 : 0;
}
