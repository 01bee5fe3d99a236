// podnet-exec: runs one command inside a network namespace, for
// NetworkNamespace.spawn (src/netns/spawn.ts). Node never changes a
// thread's namespace, so a process of its own joins the namespace and
// then execs the command in place: the command keeps this pid, which is
// the ChildProcess's pid.
//
//   podnet-exec STATUS_FD NETNS_FD net|user UID|- GID|- FILE ARGV0 [ARG...]
//
// NETNS_FD is an nsfs fd podnet opened and checked, inherited here (a path
// could be swapped between the check and the open; an fd cannot). With
// `user`, the namespace's owning user namespace (NS_GET_USERNS: the kernel
// names it from that same fd) is joined first: how an unprivileged user
// enters the network namespace of their own user namespace. UID and GID,
// when given, are taken after the namespace is entered (setns needs the
// privilege they would drop). FILE is looked up on PATH as execvp does,
// but a file that is not an executable format is an error (ENOEXEC), never
// handed to /bin/sh: argv only, no shell.
//
// STATUS_FD reports a failure before the exec: one 8-byte record, the
// stage that failed and its errno (native int32s), then exit 127 when the
// command was not found and 126 otherwise, as shells do. A successful exec
// closes it unwritten (close-on-exec), which tells podnet the command runs.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

extern char** environ;

// The stages, as src/netns/spawn.ts decodes them.
enum {
  STAGE_USERNS = 1,  // ioctl(NS_GET_USERNS) or setns(CLONE_NEWUSER)
  STAGE_NETNS = 2,   // setns(CLONE_NEWNET)
  STAGE_CREDS = 3,   // setgroups, setgid, setuid
  STAGE_EXEC = 4,    // the command could not be executed
};

// Exit status when podnet's own arguments are wrong (only podnet runs this).
#define EXIT_USAGE 125

static int status_fd = -1;

static void fail(int32_t stage, int32_t err) {
  int32_t record[2] = {stage, err};
  // One write of 8 bytes to a socket: it arrives whole or not at all; if it
  // cannot be written podnet sees a helper that exited before the exec.
  ssize_t n;
  do {
    n = write(status_fd, record, sizeof record);
  } while (n < 0 && errno == EINTR);
  _exit(stage == STAGE_EXEC && err == ENOENT ? 127 : 126);
}

// A decimal number from 0 to max, or -1.
static long number(const char* s, long max) {
  if (*s == '\0' || strlen(s) > 10) return -1;
  long v = 0;
  for (const char* p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v <= max ? v : -1;
}

// execvp without its ENOEXEC fallback to /bin/sh: each PATH entry in turn;
// EACCES is remembered but the search goes on (a later entry may be
// executable), as POSIX asks. Returns the errno to report.
static int exec_path(const char* file, char* const argv[]) {
  if (strchr(file, '/') != NULL) {
    execve(file, argv, environ);
    return errno;
  }
  const char* path = getenv("PATH");
  // What libuv searches when the environment has no PATH.
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  size_t flen = strlen(file);
  int seen_eacces = 0;
  char buf[PATH_MAX];
  for (const char* dir = path;; dir++) {
    const char* end = strchrnul(dir, ':');
    size_t dlen = (size_t)(end - dir);
    if (dlen == 0) {
      // An empty entry means the current directory.
      if (flen + 1 <= sizeof buf) memcpy(buf, file, flen + 1);
    } else if (dlen + 1 + flen + 1 <= sizeof buf) {
      memcpy(buf, dir, dlen);
      buf[dlen] = '/';
      memcpy(buf + dlen + 1, file, flen + 1);
    } else {
      buf[0] = '\0';  // too long to be a path: skip it
    }
    if (buf[0] != '\0') {
      execve(buf, argv, environ);
      if (errno == EACCES)
        seen_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ENAMETOOLONG)
        return errno;  // found, but it cannot run (ENOEXEC, E2BIG, ...)
    }
    if (*end == '\0') break;
    dir = end;
  }
  return seen_eacces ? EACCES : ENOENT;
}

int main(int argc, char** argv) {
  if (argc < 8) {
    fputs("podnet-exec: usage: STATUS_FD NETNS_FD net|user UID|- GID|- FILE ARGV0 [ARG...]\n",
          stderr);
    return EXIT_USAGE;
  }
  long sfd = number(argv[1], INT_MAX);
  long nfd = number(argv[2], INT_MAX);
  int join_user = strcmp(argv[3], "user") == 0;
  long uid = strcmp(argv[4], "-") == 0 ? -2 : number(argv[4], UINT32_MAX - 1);
  long gid = strcmp(argv[5], "-") == 0 ? -2 : number(argv[5], UINT32_MAX - 1);
  if (sfd < 3 || nfd < 3 || sfd == nfd || (!join_user && strcmp(argv[3], "net") != 0) ||
      uid == -1 || gid == -1) {
    fputs("podnet-exec: bad arguments (it is run by podnet only)\n", stderr);
    return EXIT_USAGE;
  }
  status_fd = (int)sfd;
  // Closed by a successful exec: that close is the "it runs" signal.
  if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) != 0) return EXIT_USAGE;

  if (join_user) {
    int ufd = ioctl((int)nfd, NS_GET_USERNS);
    if (ufd < 0) fail(STAGE_USERNS, errno);
    if (setns(ufd, CLONE_NEWUSER) != 0) fail(STAGE_USERNS, errno);
    close(ufd);
  }
  if (setns((int)nfd, CLONE_NEWNET) != 0) fail(STAGE_NETNS, errno);
  close((int)nfd);  // the command gets exactly the fds its caller gave it

  if (uid != -2 || gid != -2) {
    // As libuv does for spawn's uid/gid: drop supplementary groups (EPERM is
    // fine for a caller that may not), then the gid, then the uid.
    if (setgroups(0, NULL) != 0 && errno != EPERM) fail(STAGE_CREDS, errno);
    if (gid != -2 && setgid((gid_t)gid) != 0) fail(STAGE_CREDS, errno);
    if (uid != -2 && setuid((uid_t)uid) != 0) fail(STAGE_CREDS, errno);
  }

  // argv[6] is the file to run; argv[7..] its argv (argv[7] its argv[0]).
  fail(STAGE_EXEC, exec_path(argv[6], argv + 7));
  return 0;  // not reached: fail() exits
}
