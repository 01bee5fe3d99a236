// Floor for creating and removing a mounted network namespace.
//
//   netns-floor MODE DIR PREFIX ITERATIONS
//
// Per iteration, create: open(DIR/PREFIX-i, O_CREAT|O_EXCL) + close, then on
// a fresh pthread unshare(CLONE_NEWNET) and bind-mount
// /proc/self/task/TID/ns/net onto that file, join the thread. Remove:
// umount2(MNT_DETACH) + unlink.
//
// MODE floor:  exactly that.
// MODE podnet: also the extra system calls podnet's native code makes, so the
//   difference between podnet and the floor can be split into "more syscalls"
//   and "JS / N-API / thread pool": before each create, mkdir(DIR) + open(DIR)
//   + flock + mount(MS_SHARED|MS_REC) + close; after the mount, open the
//   namespace file (the fd podnet keeps), closed again before removal.
//
// DIR must exist (for podnet mode it should already be a mount point).
// Prints one JSON line: every per-operation sample of create, remove and
// create+remove (in microseconds), then their medians and minimums.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
  fprintf(stderr, "netns-floor: %s %s: %s\n", what, path ? path : "", strerror(errno));
  exit(1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct job {
  const char *path;
  int err;
  const char *what;
};

static void *unshare_and_mount(void *arg) {
  struct job *j = arg;
  if (unshare(CLONE_NEWNET) != 0) {
    j->err = errno;
    j->what = "unshare";
    return NULL;
  }
  char self[64];
  snprintf(self, sizeof self, "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
  if (mount(self, j->path, "none", MS_BIND, NULL) != 0) {
    j->err = errno;
    j->what = "mount";
  }
  return NULL;
}

static void prepare_dir(const char *dir) {
  if (mkdir(dir, 0711) != 0 && errno != EEXIST) die("mkdir", dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) die("open", dir);
  if (flock(dfd, LOCK_EX) != 0) die("flock", dir);
  if (mount("", dir, "none", MS_SHARED | MS_REC, NULL) != 0) die("mount MS_SHARED", dir);
  close(dfd);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: netns-floor floor|podnet DIR PREFIX ITERATIONS\n");
    return 2;
  }
  int podnet = strcmp(argv[1], "podnet") == 0;
  const char *dir = argv[2], *prefix = argv[3];
  int n = atoi(argv[4]);
  double *tc = malloc(sizeof(double) * n), *tr = malloc(sizeof(double) * n),
         *tt = malloc(sizeof(double) * n);
  char path[4096];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s-%d", dir, prefix, i);
    double t0 = now_us();
    if (podnet) prepare_dir(dir);
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0) die("open", path);
    close(fd);
    struct job j = {path, 0, NULL};
    pthread_t tid;
    errno = pthread_create(&tid, NULL, unshare_and_mount, &j);
    if (errno) die("pthread_create", NULL);
    pthread_join(tid, NULL);
    if (j.err) {
      errno = j.err;
      unlink(path);
      die(j.what, path);
    }
    int nsfd = -1;
    if (podnet && (nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) die("open", path);
    double t1 = now_us();
    if (nsfd >= 0) close(nsfd);
    if (umount2(path, MNT_DETACH) != 0) die("umount2", path);
    if (unlink(path) != 0) die("unlink", path);
    double t2 = now_us();
    tc[i] = t1 - t0;
    tr[i] = t2 - t1;
    tt[i] = t2 - t0;
  }
  // Per-operation samples first (the caller pools them across runs), then
  // this run's medians and minimums.
  printf("{\"mode\":\"%s\",\"n\":%d", argv[1], n);
  const char *names[3] = {"create", "remove", "total"};
  double *arrays[3] = {tc, tr, tt};
  for (int k = 0; k < 3; k++) {
    printf(",\"%s\":[", names[k]);
    for (int i = 0; i < n; i++) printf("%s%.1f", i ? "," : "", arrays[k][i]);
    printf("]");
  }
  for (int k = 0; k < 3; k++) {
    double med = median(arrays[k], n);
    printf(",\"%s_us\":%.1f,\"%s_min_us\":%.1f", names[k], med, names[k], arrays[k][0]);
  }
  printf("}\n");
  return 0;
}
