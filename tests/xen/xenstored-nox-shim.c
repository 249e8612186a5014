/* LD_PRELOAD shim that lets oxenstored (Xen 4.17, Debian xen-utils-4.17) run
 * as a plain userspace daemon on a host WITHOUT Xen, serving only its unix
 * sockets (/run/xenstored/socket, socket_ro).  Use with --no-domain-init.
 *
 *  - clamps setrlimit(RLIMIT_NOFILE) to the hard limit (sandboxes without
 *    CAP_SYS_RESOURCE otherwise make oxenstored die with EPERM);
 *  - fakes xc_interface_open / xenevtchn_open so start-up succeeds; the fake
 *    event-channel fd is a pipe that never becomes readable;
 *  - domain queries report "no domains";
 *  - when $XENSTORED_PATH is set, the hard-coded socket path
 *    /var/run/xenstored/socket is redirected there (bind, unlink, chmod) and
 *    the rest of /var/run/xenstored (the db dumped on exit) to its directory
 *    (mkdir, open64), so tests need no write access to /run and never clash
 *    with a real xenstored.
 * Nothing guest-facing (rings, grant maps, introduce) can work this way.
 * Build: gcc -shared -fPIC -O2 -o xenstored-nox-shim.so xenstored-nox-shim.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <unistd.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static char fake_xc, fake_evtchn;

/* The run directory and socket oxenstored 4.17 compiles in. */
static const char builtin_rundir[] = "/var/run/xenstored";
static const char builtin_socket[] = "/var/run/xenstored/socket";

/* Returns where `path` should really go: the built-in socket becomes
 * $XENSTORED_PATH and anything else under the built-in run directory (the db
 * dumped on exit) moves next to it.  Without XENSTORED_PATH, or for other
 * paths, returns `path` itself.  `buf` holds rewritten paths. */
static const char *redirect(const char *path, char *buf, size_t len)
{
    const char *want = getenv("XENSTORED_PATH");
    const char *rest, *slash;
    size_t dirlen;
    if (!path || !want || !*want)
        return path;
    rest = strncmp(path, builtin_rundir, sizeof(builtin_rundir) - 1) == 0
        ? path + sizeof(builtin_rundir) - 1
        : strncmp(path, builtin_rundir + 4, sizeof(builtin_rundir) - 5) == 0
        ? path + sizeof(builtin_rundir) - 5
        : NULL;
    if (!rest || (*rest && *rest != '/'))
        return path;
    if (strcmp(rest, builtin_socket + sizeof(builtin_rundir) - 1) == 0)
        return want;
    slash = strrchr(want, '/');
    dirlen = slash ? (size_t)(slash - want) : 0;
    if (dirlen + strlen(rest) + 1 > len)
        return path;
    memcpy(buf, want, dirlen);
    strcpy(buf + dirlen, rest);
    return buf;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        char buf[sizeof(un->sun_path)];
        const char *path = redirect(un->sun_path, buf, sizeof(buf));
        if (path != un->sun_path) {
            struct sockaddr_un moved;
            if (strlen(path) >= sizeof(moved.sun_path)) {
                errno = ENAMETOOLONG;
                return -1;
            }
            memset(&moved, 0, sizeof(moved));
            moved.sun_family = AF_UNIX;
            strcpy(moved.sun_path, path);
            fprintf(stderr, "[nox-shim] socket redirected to %s\n", path);
            return real(fd, (const struct sockaddr *)&moved, sizeof(moved));
        }
    }
    return real(fd, addr, len);
}

int unlink(const char *path)
{
    static int (*real)(const char *);
    if (!real)
        real = dlsym(RTLD_NEXT, "unlink");
    char buf[4096];
    return real(redirect(path, buf, sizeof(buf)));
}

int chmod(const char *path, mode_t mode)
{
    static int (*real)(const char *, mode_t);
    if (!real)
        real = dlsym(RTLD_NEXT, "chmod");
    char buf[4096];
    return real(redirect(path, buf, sizeof(buf)), mode);
}

int mkdir(const char *path, mode_t mode)
{
    static int (*real)(const char *, mode_t);
    char buf[4096];
    if (!real)
        real = dlsym(RTLD_NEXT, "mkdir");
    return real(redirect(path, buf, sizeof(buf)), mode);
}

int open64(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    char buf[4096];
    mode_t mode = 0;
    if (!real)
        real = dlsym(RTLD_NEXT, "open64");
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return real(redirect(path, buf, sizeof(buf)), flags, mode);
}
static int fake_fds[2] = { -1, -1 };

int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
    static int (*real)(__rlimit_resource_t, const struct rlimit *);
    if (!real)
        real = dlsym(RTLD_NEXT, "setrlimit");
    if (res == RLIMIT_NOFILE) {
        struct rlimit cur, want = *rl;
        if (getrlimit(RLIMIT_NOFILE, &cur) == 0) {
            if (want.rlim_max > cur.rlim_max) want.rlim_max = cur.rlim_max;
            if (want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
        }
        return real(res, &want);
    }
    return real(res, rl);
}

void *xc_interface_open(void *logger, void *dombuild_logger, unsigned flags)
{
    (void)logger; (void)dombuild_logger; (void)flags;
    fprintf(stderr, "[nox-shim] fake xc_interface_open\n");
    return &fake_xc;
}
int xc_interface_close(void *xch) { (void)xch; return 0; }
int xc_domain_getinfolist(void *xch, uint32_t first, unsigned max, void *info)
{ (void)xch; (void)first; (void)max; (void)info; return 0; }

void *xenevtchn_open(void *logger, unsigned flags)
{
    (void)logger; (void)flags;
    if (fake_fds[0] < 0 && pipe(fake_fds) < 0)
        return NULL;
    fprintf(stderr, "[nox-shim] fake xenevtchn_open\n");
    return &fake_evtchn;
}
void *xenevtchn_fdopen(void *logger, int fd, unsigned flags)
{ (void)fd; return xenevtchn_open(logger, flags); }
int xenevtchn_close(void *h) { (void)h; return 0; }
int xenevtchn_fd(void *h) { (void)h; return fake_fds[0]; }
int xenevtchn_bind_virq(void *h, unsigned virq) { (void)h; (void)virq; return 1; }
int xenevtchn_pending(void *h) { (void)h; errno = EAGAIN; return -1; }
int xenevtchn_unmask(void *h, unsigned port) { (void)h; (void)port; return 0; }
int xenevtchn_notify(void *h, unsigned port) { (void)h; (void)port; return 0; }
int xenevtchn_unbind(void *h, unsigned port) { (void)h; (void)port; return 0; }
