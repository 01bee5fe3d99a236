// Cross-process locks: an flock on a lock file. The kernel drops an flock
// when its holder dies, however it dies, which is what makes a lock on a
// container ID safe against SIGKILL (a pid in a file would need a liveness
// guess). Only the non-blocking form is offered: the JS side retries with a
// timer, so no thread ever sleeps in flock.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

namespace podnet {
namespace {

// Opens (creating) PATH without following a symlink and takes an exclusive
// flock without blocking. EWOULDBLOCK when another open file description
// holds it. A holder may unlink the file before releasing it (so lock files
// do not pile up); a waiter that then locks the unlinked inode sees it is no
// longer the one at PATH and starts again with the new file.
Outcome TryLockFile(const std::string& path) {
  for (;;) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Outcome::Fail(errno, "open", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      close(fd);
      return Outcome::Fail(e, "flock", path);
    }
    struct stat held, now;
    if (fstat(fd, &held) != 0) {
      int e = errno;
      close(fd);
      return Outcome::Fail(e, "fstat", path);
    }
    if (lstat(path.c_str(), &now) == 0 && now.st_ino == held.st_ino && now.st_dev == held.st_dev)
      return Outcome::Ok(fd);
    close(fd);
  }
}

Napi::Value JsTryLockFile(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return OutcomeToValue(info.Env(), TryLockFile(path));
}

}  // namespace

void InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("tryLockFile", Napi::Function::New(env, JsTryLockFile, "tryLockFile"));
}

}  // namespace podnet
