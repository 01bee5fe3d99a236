{
  "targets": [
    {
      "target_name": "podnet",
      "sources": ["native/addon.cc", "native/netns.cc", "native/netlink.cc", "native/nfnetlink.cc", "native/errors.cc", "native/relay.cc", "native/fd.cc", "native/rtnl-stats.cc", "native/rtnl-channel.cc", "native/delayline.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions", "-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "podnet-userns",
      "type": "executable",
      "sources": ["native/userns-helper.cc"],
      "defines": ["_GNU_SOURCE"],
      "cflags_cc": ["-std=c++17", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    },
    {
      "target_name": "podnet-exec",
      "type": "executable",
      "sources": ["native/exec-helper.c"],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"],
      "ldflags": ["-static"]
    }
  ]
}
