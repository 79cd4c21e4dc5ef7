/*
 * gingham-cni, the executable a container runtime runs (installed as /opt/cni/bin/gingham-cni).
 *
 * Why C in a TypeScript project: a CNI call is one process start, and Node's start alone costs
 * 75–120 ms on our nodes (a 100 MB binary to map and a heap to build) before any of our code runs,
 * which is more than a whole ADD of Debian's bridge + host-local. So the call is made by this small
 * static program and the work is done by the node's running agent (TypeScript, agent/cni/server.ts)
 * over its unix socket, as Cilium's plugin does with its agent. This file holds no CNI logic: it
 * answers VERSION, forwards the call, and prints the answer. Everything it decides is mirrored by
 * the Node launcher (cni/launch.cts, cni/thin.ts), and test/unit/cni/client.test.ts checks the two
 * give the same answers.
 *
 *   - `agent_socket` (an absolute path) at the top level of the network configuration: agent mode.
 *     The call goes to the agent (protocol: cni/agent-protocol.ts, with `"reply":"plain"` so that
 *     this program need not parse JSON answers). An agent that cannot be reached is CNI error 11,
 *     "try again later", naming the socket; for STATUS it is 50, "plugin not available".
 *   - otherwise: direct mode. The configuration (already read) is handed on stdin to the Node
 *     plugin next to this executable, gingham-cni.cjs, which does the work itself and reports any
 *     configuration error (JSON that does not parse comes here too).
 *
 * Environment: GINGHAM_CNI_AGENT_TIMEOUT_MS (default 60000) bounds an agent call;
 * GINGHAM_CNI_TRACE=1 prints the agent's phase timings on stderr; GINGHAM_CNI_NODE names the node
 * executable for direct mode (default: `node` in PATH).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The agent refuses a larger request, and this program a larger answer (agent-protocol.ts). */
#define MAX_MESSAGE_BYTES (1 << 20)
#define DEFAULT_TIMEOUT_MS 60000

/* Keep equal to VERSION_ANSWER in cni/launch.cts (test/unit/cni/client.test.ts compares them). */
static const char VERSION_ANSWER[] =
    "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n";

/* CNI error codes (cni/errors.ts). */
enum { CNI_IO_FAILURE = 5, CNI_TRY_AGAIN_LATER = 11, CNI_NOT_AVAILABLE = 50 };

/* ---- a growable byte buffer ---- */

struct buf {
  char *p;
  size_t len, cap;
};

static void die_oom(void) {
  static const char msg[] = "{\"cniVersion\":\"1.1.0\",\"code\":5,\"msg\":\"gingham-cni: out of memory\"}\n";
  if (write(1, msg, sizeof msg - 1) < 0) _exit(1);
  _exit(1);
}

static void buf_grow(struct buf *b, size_t more) {
  if (b->len + more + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) die_oom();
  b->p = p;
  b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n) {
  buf_grow(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* Appends `s` as a JSON string literal (quotes included). Bytes ≥ 0x80 pass as they are (UTF-8). */
static void buf_json(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_add(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[7];
    switch (c) {
      case '"': buf_add(b, "\\\"", 2); break;
      case '\\': buf_add(b, "\\\\", 2); break;
      case '\n': buf_add(b, "\\n", 2); break;
      case '\r': buf_add(b, "\\r", 2); break;
      case '\t': buf_add(b, "\\t", 2); break;
      default:
        if (c < 0x20) {
          memcpy(esc, "\\u00", 4);
          esc[4] = hex[c >> 4];
          esc[5] = hex[c & 15];
          buf_add(b, esc, 6);
        } else {
          buf_add(b, (const char *)&s[i], 1);
        }
    }
  }
  buf_add(b, "\"", 1);
}

static double now_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* the runtime went away: nobody to tell */
    p += w;
    n -= (size_t)w;
  }
}

/* ---- reading two top-level keys of the network configuration ----
 * Not a validator: configuration errors are for the code that uses the configuration (the agent
 * or the Node plugin) to report. A scan that meets something it cannot read finds nothing. */

struct scan {
  const char *p, *end;
};

static void skip_ws(struct scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_u16(struct scan *s, unsigned *out) {
  if (s->end - s->p < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(s->p[i]);
    if (h < 0) return 0;
    v = v * 16 + (unsigned)h;
  }
  s->p += 4;
  *out = v;
  return 1;
}

static void put_utf8(struct buf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  buf_add(b, u, n);
}

/* A JSON string at s->p, decoded into `out` (when not NULL). 0 when malformed. */
static int scan_string(struct scan *s, struct buf *out) {
  if (s->p >= s->end || *s->p != '"') return 0;
  s->p++;
  while (s->p < s->end) {
    char c = *s->p++;
    if (c == '"') return 1;
    if ((unsigned char)c < 0x20) return 0;
    if (c != '\\') {
      if (out) buf_add(out, &c, 1);
      continue;
    }
    if (s->p >= s->end) return 0;
    char e = *s->p++;
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e != '\0' && simple) {
      static const char decoded[] = "\"\\/\b\f\n\r\t";
      if (out) buf_add(out, &decoded[simple - "\"\\/bfnrt"], 1);
    } else if (e == 'u') {
      unsigned cp;
      if (!read_u16(s, &cp)) return 0;
      if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u') {
        struct scan t = {s->p + 2, s->end};
        unsigned lo;
        if (read_u16(&t, &lo) && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          s->p = t.p;
        }
      }
      if (out) put_utf8(out, cp);
    } else {
      return 0;
    }
  }
  return 0;
}

/* Skips one JSON value (objects and arrays by bracket depth). 0 when malformed. */
static int skip_value(struct scan *s) {
  skip_ws(s);
  if (s->p >= s->end) return 0;
  if (*s->p == '"') return scan_string(s, NULL);
  if (*s->p == '{' || *s->p == '[') {
    int depth = 0;
    while (s->p < s->end) {
      char c = *s->p;
      if (c == '"') {
        if (!scan_string(s, NULL)) return 0;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if (c == '}' || c == ']') depth--;
      s->p++;
      if (depth == 0) return 1;
    }
    return 0;
  }
  const char *start = s->p;
  while (s->p < s->end && !strchr(",}] \t\r\n", *s->p)) s->p++;
  return s->p > start;
}

/*
 * The string value of top-level `key` in the JSON object `text`; the last one when repeated, as
 * JSON.parse does. 0 when absent, not a string, or when the text is not a JSON object.
 */
static int top_level_string(const char *text, size_t len, const char *key, struct buf *out) {
  struct scan s = {text, text + len};
  struct buf k = {0}, v = {0};
  int found = 0;
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{') goto done;
  s.p++;
  skip_ws(&s);
  if (s.p < s.end && *s.p == '}') goto done; /* {} */
  for (;;) {
    skip_ws(&s);
    k.len = 0;
    if (!scan_string(&s, &k)) goto malformed;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ':') goto malformed;
    s.p++;
    skip_ws(&s);
    if (k.len == strlen(key) && memcmp(k.p, key, k.len) == 0) {
      if (s.p < s.end && *s.p == '"') {
        v.len = 0;
        if (!scan_string(&s, &v)) goto malformed;
        found = 1;
      } else {
        if (!skip_value(&s)) goto malformed;
        found = 0; /* a later non-string value wins over an earlier string */
      }
    } else if (!skip_value(&s)) {
      goto malformed;
    }
    skip_ws(&s);
    if (s.p < s.end && *s.p == ',') {
      s.p++;
      continue;
    }
    if (s.p < s.end && *s.p == '}') break;
    goto malformed;
  }
  if (found) {
    out->len = 0;
    buf_add(out, v.p ? v.p : "", v.len);
  }
  goto done;
malformed:
  found = 0;
done:
  free(k.p);
  free(v.p);
  return found;
}

/* ---- answers made here ---- */

/* The configuration's cniVersion when it looks like one, for the version of our error objects. */
static void config_version(const char *conf, size_t len, struct buf *out) {
  if (top_level_string(conf, len, "cniVersion", out)) {
    int dots = 0, digits = 0, ok = out->len > 0;
    for (size_t i = 0; ok && i < out->len; i++) {
      if (out->p[i] == '.') {
        ok = digits > 0;
        dots++;
        digits = 0;
      } else if (out->p[i] >= '0' && out->p[i] <= '9') {
        digits++;
      } else {
        ok = 0;
      }
    }
    if (ok && dots == 2 && digits > 0) return;
  }
  out->len = 0;
  buf_str(out, "1.1.0");
}

/* Prints a CNI error object and exits 1 (cni/thin.ts `unreachable` gives the same texts). */
static void cni_error(const char *version, int code, const char *details, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct buf o = {0};
  buf_str(&o, "{\"cniVersion\":");
  buf_json(&o, version, strlen(version));
  char num[32];
  snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
  buf_str(&o, num);
  buf_json(&o, msg, strlen(msg));
  if (details) {
    buf_str(&o, ",\"details\":");
    buf_json(&o, details, strlen(details));
  }
  buf_str(&o, "}\n");
  write_all(1, o.p, o.len);
  exit(1);
}

static const char *errno_text(int e, char *out, size_t cap) {
  const char *name = strerrorname_np(e);
  snprintf(out, cap, "%s (%s)", name ? name : "error", strerror(e));
  return out;
}

/* ---- direct mode: the Node plugin ---- */

static void direct(const char *conf, size_t len, const char *version) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 32);
  if (n <= 0) cni_error(version, CNI_IO_FAILURE, NULL, "gingham-cni: cannot find its own path: %s", strerror(errno));
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  strcpy(slash + 1, "gingham-cni.cjs");
  if (access(self, R_OK) != 0)
    cni_error(version, CNI_IO_FAILURE,
              "without agent_socket in the network configuration gingham-cni runs the Node plugin itself",
              "gingham-cni: direct mode needs %s: %s", self, strerror(errno));
  /* The configuration is already read: hand it on as stdin, from memory. */
  int fd = memfd_create("gingham-cni-conf", 0);
  if (fd < 0) cni_error(version, CNI_IO_FAILURE, NULL, "gingham-cni: memfd_create: %s", strerror(errno));
  write_all(fd, conf, len);
  if (lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0)
    cni_error(version, CNI_IO_FAILURE, NULL, "gingham-cni: passing the configuration on: %s", strerror(errno));
  close(fd);
  /* The plugin speaks plain HTTP to etcd or nothing: loading a CA bundle costs ~40 ms a call. */
  unsetenv("NODE_EXTRA_CA_CERTS");
  const char *node = getenv("GINGHAM_CNI_NODE");
  if (!node || !*node) node = "node";
  char *argv[] = {(char *)node, self, NULL};
  execvp(node, argv);
  cni_error(version, CNI_IO_FAILURE, "set GINGHAM_CNI_NODE or PATH so that node (20 or later) is found",
            "gingham-cni: direct mode cannot start %s: %s", node, strerror(errno));
}

/* ---- agent mode ---- */

struct call {
  const char *socket, *command, *version;
  double deadline; /* CLOCK_MONOTONIC ms */
  long timeout_ms;
};

static void unreachable(const struct call *c, const char *why) {
  char details[8192];
  snprintf(details, sizeof details, "is the gingham agent running on this node with --cni-socket %s?", c->socket);
  int status = strcmp(c->command, "STATUS") == 0;
  cni_error(c->version, status ? CNI_NOT_AVAILABLE : CNI_TRY_AGAIN_LATER, details,
            "gingham agent not reachable at %s: %s", c->socket, why);
}

/* Waits for `events` on fd until the call's deadline; on timeout the call fails. */
static void wait_for(const struct call *c, int fd, short events) {
  for (;;) {
    double left = c->deadline - now_ms(CLOCK_MONOTONIC);
    if (left <= 0) break;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, left > 3600000 ? 3600000 : (int)left + 1);
    if (r > 0) return;
    if (r < 0 && errno != EINTR) {
      char e[256];
      unreachable(c, errno_text(errno, e, sizeof e));
    }
  }
  char why[64];
  snprintf(why, sizeof why, "no answer within %ld ms", c->timeout_ms);
  unreachable(c, why);
}

extern char **environ;

static void agent(const struct call *c, const char *conf, size_t len, int trace, double started_epoch) {
  char e[256];
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(c->socket) >= sizeof addr.sun_path) unreachable(c, "the socket path is too long");
  strcpy(addr.sun_path, c->socket);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) unreachable(c, errno_text(errno, e, sizeof e));
  /* EAGAIN: the agent's accept backlog is full (a burst of calls). The connection was not made;
   * try again until the deadline, as a blocking connect would wait. */
  while (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    if (errno == EINTR) continue;
    if (errno != EAGAIN) unreachable(c, errno_text(errno, e, sizeof e));
    if (now_ms(CLOCK_MONOTONIC) >= c->deadline) {
      char why[64];
      snprintf(why, sizeof why, "no answer within %ld ms", c->timeout_ms);
      unreachable(c, why);
    }
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }

  /* The request: one line of JSON (cni/agent-protocol.ts). */
  struct buf req = {0};
  buf_str(&req, "{\"v\":1,\"reply\":\"plain\",");
  if (trace) buf_str(&req, "\"trace\":true,");
  buf_str(&req, "\"env\":{");
  int first = 1;
  for (char **v = environ; *v; v++) {
    if (strncmp(*v, "CNI_", 4) != 0) continue;
    const char *eq = strchr(*v, '=');
    if (!eq) continue;
    if (!first) buf_add(&req, ",", 1);
    first = 0;
    buf_json(&req, *v, (size_t)(eq - *v));
    buf_add(&req, ":", 1);
    buf_json(&req, eq + 1, strlen(eq + 1));
  }
  buf_str(&req, "},\"stdin\":");
  buf_json(&req, conf, len);
  buf_str(&req, "}\n");

  size_t off = 0;
  while (off < req.len) {
    ssize_t w = write(fd, req.p + off, req.len - off);
    if (w > 0) {
      off += (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait_for(c, fd, POLLOUT);
    } else {
      unreachable(c, errno == EPIPE ? "the agent closed the connection without answering"
                                    : errno_text(errno, e, sizeof e));
    }
  }
  free(req.p);

  /* The answer: "<exit code>\n", "#<trace line>\n"…, then what the plugin prints. */
  struct buf ans = {0};
  for (;;) {
    buf_grow(&ans, 65536);
    ssize_t r = read(fd, ans.p + ans.len, 65536);
    if (r > 0) {
      ans.len += (size_t)r;
      ans.p[ans.len] = '\0';
      if (ans.len > MAX_MESSAGE_BYTES) {
        char why[64];
        snprintf(why, sizeof why, "answer larger than %d bytes", MAX_MESSAGE_BYTES);
        unreachable(c, why);
      }
    } else if (r == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      wait_for(c, fd, POLLIN);
    } else if (errno == ECONNRESET) {
      break;
    } else {
      unreachable(c, errno_text(errno, e, sizeof e));
    }
  }
  close(fd);
  if (ans.len == 0) unreachable(c, "the agent closed the connection without answering");
  char *nl = memchr(ans.p, '\n', ans.len);
  if (!nl || nl - ans.p != 1 || (ans.p[0] != '0' && ans.p[0] != '1'))
    unreachable(c, "the agent's answer does not start with an exit code line");
  int code = ans.p[0] - '0';
  char *p = nl + 1, *end = ans.p + ans.len;
  struct buf traces = {0};
  while (p < end && *p == '#') {
    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    buf_str(&traces, "[gingham-cni agent] ");
    buf_add(&traces, p + 1, (size_t)(eol - p - 1));
    buf_add(&traces, "\n", 1);
    p = eol < end ? eol + 1 : end;
  }
  write_all(1, p, (size_t)(end - p));
  if (trace) {
    /* Epoch times let the caller split its wall time: the exec before this program ran, and
     * the exit after the answer (bench/cni.bench.ts reads these lines). */
    char line[256];
    struct buf t = {0};
    snprintf(line, sizeof line, "[gingham-cni] process started at %.1f (epoch ms)\n", started_epoch);
    buf_str(&t, line);
    buf_add(&t, traces.p ? traces.p : "", traces.len);
    snprintf(line, sizeof line, "[gingham-cni] agent answered: +%.1f ms\n",
             now_ms(CLOCK_REALTIME) - started_epoch);
    buf_str(&t, line);
    snprintf(line, sizeof line, "[gingham-cni] answer printed at %.1f (epoch ms)\n", now_ms(CLOCK_REALTIME));
    buf_str(&t, line);
    write_all(2, t.p, t.len);
  }
  exit(code);
}

int main(void) {
  double started_epoch = now_ms(CLOCK_REALTIME);
  signal(SIGPIPE, SIG_IGN);
  const char *command = getenv("CNI_COMMAND");
  if (!command) command = "";
  if (strcmp(command, "VERSION") == 0) {
    write_all(1, VERSION_ANSWER, sizeof VERSION_ANSWER - 1);
    return 0;
  }

  struct buf conf = {0};
  for (;;) {
    buf_grow(&conf, 65536);
    ssize_t r = read(0, conf.p + conf.len, 65536);
    if (r > 0) {
      conf.len += (size_t)r;
      conf.p[conf.len] = '\0';
    } else if (r == 0 || errno != EINTR) {
      break; /* EOF, or no stdin at all: the configuration is empty */
    }
  }
  if (!conf.p) buf_add(&conf, "", 0);

  struct buf version = {0};
  config_version(conf.p, conf.len, &version);
  struct buf sock = {0};
  if (!top_level_string(conf.p, conf.len, "agent_socket", &sock) || sock.len == 0 || sock.p[0] != '/' ||
      memchr(sock.p, '\0', sock.len))
    direct(conf.p, conf.len, version.p);
  if (conf.len > MAX_MESSAGE_BYTES)
    cni_error(version.p, CNI_IO_FAILURE, NULL, "gingham-cni: network configuration larger than %d bytes",
              MAX_MESSAGE_BYTES);

  const char *t = getenv("GINGHAM_CNI_AGENT_TIMEOUT_MS");
  char *endp = NULL;
  long timeout = t && *t ? strtol(t, &endp, 10) : DEFAULT_TIMEOUT_MS;
  if (t && *t && (*endp != '\0' || timeout <= 0)) timeout = DEFAULT_TIMEOUT_MS;
  const char *tr = getenv("GINGHAM_CNI_TRACE");
  struct call c = {sock.p, command, version.p, now_ms(CLOCK_MONOTONIC) + (double)timeout, timeout};
  agent(&c, conf.p, conf.len, tr && strcmp(tr, "1") == 0, started_epoch);
  return 1;
}
