/*
 * The few declarations of QEMU's TCG plugin API that insn.c uses, for QEMU 7.2
 * (Debian bookworm's qemu-user, plugin API QEMU_PLUGIN_VERSION 1).
 *
 * No Debian 12 package ships qemu-plugin.h, so this is a declarations-only
 * excerpt of include/qemu/qemu-plugin.h from the qemu 7.2 source package
 * (`apt-get source qemu`, qemu_7.2+dfsg.orig.tar.xz; Debian's 7.2.x stable
 * patches up to +deb12u18 do not touch that header). Types, enumerator values
 * and prototypes are copied unchanged; everything else is left out.
 * The API changed in QEMU 9.0 (version 2, per-vCPU inline ops): do not use this
 * header against a newer QEMU.
 *
 * qemu-plugin.h: Copyright (C) 2017, Emilio G. Cota; Copyright (C) 2019, Linaro.
 * License: GNU GPL, version 2 or later.
 */
#ifndef CXR_QEMU_PLUGIN_API_H
#define CXR_QEMU_PLUGIN_API_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;

extern QEMU_PLUGIN_EXPORT int qemu_plugin_version;

#define QEMU_PLUGIN_VERSION 1

typedef struct qemu_info_t {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv);

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

struct qemu_plugin_tb;

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id,
                                               struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);

enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64,
};

void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                              enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);

size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);

void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id,
                                    qemu_plugin_udata_cb_t cb, void *userdata);

void qemu_plugin_outs(const char *string);

#endif
