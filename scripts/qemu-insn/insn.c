/*
 * Minimal QEMU TCG plugin: counts the guest instructions executed, all vCPUs
 * together, and writes one line `insns: <N>` at exit.
 *
 *   qemu-aarch64 -plugin insn.so,out=/path/file prog   -> line written to /path/file
 *   qemu-aarch64 -d plugin -plugin insn.so prog         -> line via qemu_plugin_outs (stderr);
 *                                                          without `-d plugin` QEMU drops it
 *
 * Each translated block gets an inline "add n_insns to a global u64" op, so the cost
 * is one memory add per executed block. The add is not atomic: with several guest
 * threads running at once the total can lose updates (fine for the single-threaded
 * programs measured). A block left early by an exception still counts in full.
 * Nothing is reported when the guest dies of a signal: QEMU 7.2 linux-user runs no
 * atexit callbacks on that path.
 *
 * Built by scripts/insn-count.sh against qemu-plugin-api.h (QEMU 7.2 plugin API v1).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "qemu-plugin-api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t insn_count;
static const char *out_path;
static pid_t owner_pid;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                             &insn_count,
                                             qemu_plugin_tb_n_insns(tb));
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    char line[64];
    (void)id;
    (void)userdata;
    /* A guest fork() runs a copy of this plugin in the child: only the process
     * that loaded it reports, so a child cannot overwrite the parent's count. */
    if (getpid() != owner_pid) {
        return;
    }
    snprintf(line, sizeof line, "insns: %" PRIu64 "\n", insn_count);
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (f) {
            fputs(line, f);
            if (fclose(f) == 0) {
                return;
            }
        }
        fprintf(stderr, "insn plugin: cannot write %s\n", out_path);
    }
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
                                           const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0 && argv[i][4] != '\0') {
            out_path = argv[i] + 4;
        } else {
            fprintf(stderr, "insn plugin: unknown argument '%s' (want out=PATH)\n",
                    argv[i]);
            return -1;
        }
    }
    owner_pid = getpid();
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
