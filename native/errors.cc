#include <pthread.h>
#include <unistd.h>

#include "common.h"

namespace podnet {

Napi::Error SysError(Napi::Env env, int err, const char* syscall, const std::string& path) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall ? syscall : "?") + " failed");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall ? syscall : "?"));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  return e;
}

Napi::Value OutcomeToValue(Napi::Env env, const Outcome& o) {
  if (o.err != 0) {
    SysError(env, o.err, o.syscall, o.path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(o.value));
}

namespace {

// Runs one blocking job on the libuv pool. Pool jobs never switch namespace
// (those run on threads of their own: OnFreshThread, RunOnFreshThread).
class OutcomeWorker : public Napi::AsyncWorker {
 public:
  OutcomeWorker(Napi::Env env, std::function<Outcome()> fn)
      : Napi::AsyncWorker(env, "podnet"), fn_(std::move(fn)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { out_ = fn_(); }

  void OnOK() override {
    Napi::Env env = Env();
    if (out_.err != 0) {
      deferred_.Reject(SysError(env, out_.err, out_.syscall, out_.path).Value());
    } else {
      deferred_.Resolve(Napi::Number::New(env, static_cast<double>(out_.value)));
    }
  }

 private:
  std::function<Outcome()> fn_;
  Outcome out_;
  Napi::Promise::Deferred deferred_;
};

struct ThreadJob {
  std::function<Outcome()> fn;
  Outcome out;
};

void* ThreadMain(void* arg) {
  auto* job = static_cast<ThreadJob*>(arg);
  job->out = job->fn();
  job->fn = nullptr;  // as in DetachedMain
  return nullptr;
}

}  // namespace

Napi::Value OutcomeToPromise(Napi::Env env, std::function<Outcome()> fn) {
  auto* worker = new OutcomeWorker(env, std::move(fn));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

namespace {

// A job for OnFreshThread: runs on its own detached thread, then hands the
// outcome back to the JS thread through a thread-safe function.
struct DetachedJob {
  std::function<Outcome()> fn;
  Outcome out;
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
};

void SettleOnJsThread(Napi::Env env, Napi::Function, DetachedJob* job) {
  Outcome& out = job->out;
  if (env == nullptr) {
    // The environment is shutting down: nobody will receive the fds.
    for (int fd : out.fds) close(fd);
  } else if (out.err != 0) {
    job->deferred.Reject(SysError(env, out.err, out.syscall, out.path).Value());
  } else if (out.isList) {
    Napi::Array fds = Napi::Array::New(env, out.fds.size());
    for (uint32_t i = 0; i < out.fds.size(); i++) fds.Set(i, Napi::Number::New(env, out.fds[i]));
    job->deferred.Resolve(fds);
  } else {
    job->deferred.Resolve(Napi::Number::New(env, static_cast<double>(out.value)));
  }
  delete job;
}

void* DetachedMain(void* arg) {
  auto* job = static_cast<DetachedJob*>(arg);
  job->out = job->fn();
  // What the job owns (a namespace fd dup'ed for this thread) is released
  // here, on the thread, not later on the JS thread.
  job->fn = nullptr;
  Napi::ThreadSafeFunction tsfn = job->tsfn;
  tsfn.BlockingCall(job, SettleOnJsThread);
  tsfn.Release();
  return nullptr;
}

}  // namespace

Napi::Value OnFreshThread(Napi::Env env, std::function<Outcome()> fn) {
  auto* job = new DetachedJob{std::move(fn), Outcome(), Napi::Promise::Deferred::New(env), Napi::ThreadSafeFunction()};
  Napi::Promise promise = job->deferred.Promise();
  job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                            "podnet:thread", 0, 1);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  int rc = pthread_create(&tid, &attr, DetachedMain, job);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    job->tsfn.Release();
    job->deferred.Reject(SysError(env, rc, "pthread_create", std::string()).Value());
    delete job;
  }
  return promise;
}

Outcome RunOnFreshThread(std::function<Outcome()> fn) {
  ThreadJob job{std::move(fn), Outcome()};
  pthread_t tid;
  int rc = pthread_create(&tid, nullptr, ThreadMain, &job);
  if (rc != 0) return Outcome::Fail(rc, "pthread_create");
  rc = pthread_join(tid, nullptr);
  if (rc != 0) return Outcome::Fail(rc, "pthread_join");
  return job.out;
}

}  // namespace podnet
