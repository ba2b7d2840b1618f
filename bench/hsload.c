/*
 * hsload: new-TLS-connection load generator for scripts/bench.sh.
 *
 * CONNS threads each loop for SECONDS: TCP connect, full TLS handshake, one
 * "GET PATH HTTP/1.1" with "Connection: close", read the answer to EOF, close.
 * Every connection gets a fresh SSL object from a context whose client session
 * cache is off and which never offers tickets or PSKs, so there is nothing to
 * resume: each connection is a full handshake (checked with
 * SSL_session_reused(), reported as "resumed"). wrk and h2load, by contrast,
 * resume the previous session when they reconnect.
 *
 * Output: one line "HSJSON {...}" with counts, rate and latency percentiles
 * (connect start to end of response), plus the negotiated protocol, cipher and
 * key-exchange group of the last connection.
 *
 *   hsload HOST PORT PATH SECONDS CONNS [CAFILE]
 *
 * Build: cc -O2 -pthread -o hsload hsload.c -lssl -lcrypto
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 20)

static SSL_CTX *ctx;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static const char *host, *path;
static int port;
static double deadline;
static char request[1024];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long ok, failed, resumed, non200;
static double *samples;
static long nsamples;
static char last_proto[32], last_cipher[64], last_group[64];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One connection; returns 0 on success, 1 on failure, 2 when the answer was not 200. */
static int one(double *lat, int *was_resumed) {
    double t0 = now();
    int rc = 1, fd = socket(addr.ss_family, SOCK_STREAM, 0), one_ = 1;
    SSL *ssl = NULL;
    char buf[16384];
    size_t got = 0;
    char head[16] = {0};
    if (fd < 0) return 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_, sizeof one_);
    if (connect(fd, (struct sockaddr *)&addr, addrlen) != 0) goto out;
    ssl = SSL_new(ctx);
    if (!ssl) goto out;
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    if (SSL_connect(ssl) != 1) goto out;
    if (SSL_write(ssl, request, (int)strlen(request)) <= 0) goto out;
    for (;;) {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) {
            int e = SSL_get_error(ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && got > 0)) break;
            goto out;
        }
        if (got < sizeof head - 1) {
            size_t k = sizeof head - 1 - got;
            memcpy(head + got, buf, (size_t)n < k ? (size_t)n : k);
        }
        got += (size_t)n;
    }
    *was_resumed = SSL_session_reused(ssl);
    rc = strncmp(head, "HTTP/1.1 200", 12) == 0 ? 0 : 2;
    *lat = now() - t0;
    pthread_mutex_lock(&mu);
    snprintf(last_proto, sizeof last_proto, "%s", SSL_get_version(ssl));
    snprintf(last_cipher, sizeof last_cipher, "%s", SSL_get_cipher_name(ssl));
    {
        const char *g = NULL;
        EVP_PKEY *k = NULL;
        if (SSL_get_peer_tmp_key(ssl, &k)) {
            g = OBJ_nid2sn(EVP_PKEY_get_id(k));
            EVP_PKEY_free(k);
        }
        snprintf(last_group, sizeof last_group, "%s", g ? g : "?");
    }
    pthread_mutex_unlock(&mu);
out:
    if (ssl) {
        SSL_set_quiet_shutdown(ssl, 1); /* the server closed already: no close_notify round trip */
        SSL_free(ssl);
    }
    close(fd);
    return rc;
}

static void *worker(void *arg) {
    (void)arg;
    while (now() < deadline) {
        double lat = 0;
        int r = 0, rc = one(&lat, &r);
        pthread_mutex_lock(&mu);
        if (rc == 0) {
            ok++;
            if (nsamples < MAX_SAMPLES) samples[nsamples++] = lat;
        } else if (rc == 2) {
            non200++;
        } else {
            failed++;
        }
        resumed += r;
        pthread_mutex_unlock(&mu);
        if (rc == 1) ERR_clear_error();
    }
    ERR_clear_error();
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH SECONDS CONNS [CAFILE]\n", argv[0]);
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    path = argv[3];
    double seconds = atof(argv[4]);
    int conns = atoi(argv[5]);
    if (port <= 0 || seconds <= 0 || conns <= 0 || conns > 1000) {
        fprintf(stderr, "hsload: bad arguments\n");
        return 2;
    }
    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, argv[2], &hints, &res) != 0) {
        fprintf(stderr, "hsload: cannot resolve %s\n", host);
        return 2;
    }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    /* HSLOAD_COOKIE: a Cookie header value sent with every request (Vigie's session). */
    const char *cookie = getenv("HSLOAD_COOKIE");
    snprintf(request, sizeof request,
             "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: hsload\r\nAccept: */*\r\n"
             "%s%s%sConnection: close\r\n\r\n", path, host, port,
             cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "");

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return 2;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Nothing to resume: no client cache, no tickets (TLS 1.2), no PSK kept (TLS 1.3). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    if (argc > 6) {
        /* Verify like a browser would (costs the client one ECDSA verification). */
        if (SSL_CTX_load_verify_locations(ctx, argv[6], NULL) != 1) {
            fprintf(stderr, "hsload: cannot load %s\n", argv[6]);
            return 2;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    samples = malloc(sizeof(double) * MAX_SAMPLES);
    if (!samples) return 2;

    pthread_t *th = calloc((size_t)conns, sizeof *th);
    if (!th) return 2;
    double start = now();
    deadline = start + seconds;
    for (int i = 0; i < conns; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
            fprintf(stderr, "hsload: pthread_create: %s\n", strerror(errno));
            return 2;
        }
    for (int i = 0; i < conns; i++) pthread_join(th[i], NULL);
    double elapsed = now() - start;

    qsort(samples, (size_t)nsamples, sizeof *samples, cmp);
    double p50 = nsamples ? samples[nsamples / 2] * 1e3 : 0;
    double p99 = nsamples ? samples[(long)(nsamples * 0.99)] * 1e3 : 0;
    printf("HSJSON {\"ok\":%ld,\"failed\":%ld,\"non200\":%ld,\"resumed\":%ld,\"elapsed_s\":%.3f,"
           "\"rate\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"proto\":\"%s\",\"cipher\":\"%s\","
           "\"group\":\"%s\"}\n",
           ok, failed, non200, resumed, elapsed, ok / elapsed, p50, p99, last_proto, last_cipher,
           last_group);
    return 0;
}
