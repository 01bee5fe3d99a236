#include "common.h"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  podnet::InitNetns(env, exports);
  podnet::InitNetlink(env, exports);
  podnet::InitNfnetlink(env, exports);
  podnet::InitRelay(env, exports);
  podnet::InitFd(env, exports);
  podnet::InitRtnlChannel(env, exports);
  podnet::InitDelayLine(env, exports);
  return exports;
}

NODE_API_MODULE(podnet, Init)
