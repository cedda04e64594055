/* tt_insn_count.c - QEMU TCG plugin: exact guest instruction count, with marks.
 *
 * Built by tintin.targets into its cache:  gcc -shared -fPIC -O2 -o tt_insn_count.so tt_insn_count.c
 * Used as:  qemu-system-arm ... -plugin tt_insn_count.so,mark=0xADDR -d plugin -D LOGFILE
 *
 * Every guest instruction adds one to a 64-bit counter through an inline TCG operation, so
 * the count is exact even when a translation block is left early (faults, semihosting).
 * Each time the instruction at `mark` (the entry of tt_bench_mark) is about to execute, the
 * plugin logs "tt-mark <instructions executed before it>"; at exit "tt-insns <total>".
 *
 * Plugin API version 1 (QEMU 7.x, as shipped by Debian bookworm). Debian ships no
 * qemu-plugin.h, so the few declarations used are written out here. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t executed;                 /* one vCPU: a plain counter is exact */
static uint64_t mark_vaddr = UINT64_MAX;  /* no mark unless given */

static void at_mark(unsigned int vcpu_index, void *userdata)
{
    char line[48];
    (void)vcpu_index;
    (void)userdata;
    /* the callback runs before the marked instruction's own inline add */
    snprintf(line, sizeof line, "tt-mark %llu\n", (unsigned long long)executed);
    qemu_plugin_outs(line);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (qemu_plugin_insn_vaddr(insn) == mark_vaddr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, at_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
    }
}

static void at_exit_report(qemu_plugin_id_t id, void *userdata)
{
    char line[48];
    (void)id;
    (void)userdata;
    snprintf(line, sizeof line, "tt-insns %llu\n", (unsigned long long)executed);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; i++) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_vaddr = strtoull(argv[i] + 5, NULL, 0);
        } else {
            fprintf(stderr, "tt_insn_count: unknown argument '%s' (expected mark=ADDR)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit_report, NULL);
    return 0;
}
