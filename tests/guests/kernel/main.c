/* Boot-time setup (start info, command line, GDT/TSS, IDT, PIC, PIT) and machine exit. */
#include "kernel.h"

extern const struct rr_program rr_program;
extern u64 gdt[];
extern const u64 trap_stub_table[48];
extern u64 boot_pml4[];

struct hvm_start_info {
  u32 magic;
  u32 version;
  u32 flags;
  u32 nr_modules;
  u64 modlist_paddr;
  u64 cmdline_paddr;
  u64 rsdp_paddr;
  u64 memmap_paddr;
  u32 memmap_entries;
  u32 reserved;
};
struct hvm_memmap_entry {
  u64 addr;
  u64 size;
  u32 type;
  u32 reserved;
};
#define HVM_START_MAGIC 0x336ec578u

struct tss {
  u32 reserved0;
  u64 rsp0, rsp1, rsp2;
  u64 reserved1;
  u64 ist[7];
  u64 reserved2;
  u16 reserved3;
  u16 iomap_base;
} __attribute__((packed));

static struct tss tss = {.iomap_base =
                             sizeof(struct tss)}; /* no I/O bitmap: CPL3 port I/O faults */
static u64 idt[48 * 2] __attribute__((aligned(16)));
char kernel_cmdline[1024];

const char* cmdline_find(const char* key, const char* from) {
  for (const char* p = from ? from : kernel_cmdline; *p; p++) {
    if (p != kernel_cmdline && p[-1] != ' ') continue;
    const char *k = key, *v = p;
    while (*k && *v == *k) k++, v++;
    if (!*k && *v == '=') return v + 1;
  }
  return 0;
}

i64 cmdline_int(const char* key, i64 fallback) {
  const char* v = cmdline_find(key, 0);
  if (!v || *v < '0' || *v > '9') return fallback;
  i64 value = 0;
  while (*v >= '0' && *v <= '9') value = value * 10 + (*v++ - '0');
  return value;
}

static void load_cmdline(const struct hvm_start_info* info) {
  if (!info || info->magic != HVM_START_MAGIC || !info->cmdline_paddr) return;
  const char* src = (const char*)info->cmdline_paddr;
  u64 i = 0;
  for (; i + 1 < sizeof kernel_cmdline && src[i]; i++) kernel_cmdline[i] = src[i];
  kernel_cmdline[i] = 0;
}

static u64 ram_kib(const struct hvm_start_info* info) {
  if (!info || info->magic != HVM_START_MAGIC || info->version < 1 || !info->memmap_paddr) return 0;
  const struct hvm_memmap_entry* map = (const struct hvm_memmap_entry*)info->memmap_paddr;
  u64 total = 0;
  for (u32 i = 0; i < info->memmap_entries; i++)
    if (map[i].type == 1) total += map[i].size;
  return total >> 10;
}

void set_kernel_stack(u64 rsp0) { tss.rsp0 = rsp0; }

static void load_tss(void) {
  u64 base = (u64)&tss, limit = sizeof tss - 1;
  gdt[TSS_SELECTOR / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ul << 40) |
                          ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
  gdt[TSS_SELECTOR / 8 + 1] = base >> 32;
  __asm__ volatile("ltr %w0" ::"r"(TSS_SELECTOR));
}

static void load_idt(void) {
  for (u32 v = 0; v < 48; v++) {
    u64 handler = trap_stub_table[v];
    idt[2 * v] = (handler & 0xffff) | ((u64)KERNEL_CS << 16) | (0x8eul << 40) |
                 ((handler >> 16 & 0xffff) << 48);
    idt[2 * v + 1] = handler >> 32;
  }
  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) pointer = {sizeof idt - 1, (u64)idt};
  __asm__ volatile("lidt %0" ::"m"(pointer));
}

static u8 pic_masks[2] = {0xff, 0xff};

static void pic_init(void) {
  outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 */
  outb(0xa0, 0x11);
  outb(0x21, IRQ_BASE); /* ICW2: vectors 0x20-0x27 */
  outb(0xa1, IRQ_BASE + 8);
  outb(0x21, 0x04); /* ICW3: slave on IRQ2 */
  outb(0xa1, 0x02);
  outb(0x21, 0x01); /* ICW4: 8086 mode */
  outb(0xa1, 0x01);
  pic_unmask(2);
  outb(0xa1, pic_masks[1]);
}

void pic_unmask(u32 irq) {
  pic_masks[irq >> 3] &= (u8) ~(1u << (irq & 7));
  outb(irq < 8 ? 0x21 : 0xa1, pic_masks[irq >> 3]);
}

void pic_eoi(u32 irq) {
  if (irq >= 8) outb(0xa0, 0x20);
  outb(0x20, 0x20);
}

static u32 pit_init(u32 hz) {
  if (hz < 19) hz = 19; /* the 16-bit divisor limits the slowest rate */
  if (hz > 10000) hz = 10000;
  u32 divisor = 1193182 / hz;
  outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator) */
  outb(0x40, (u8)divisor);
  outb(0x40, (u8)(divisor >> 8));
  return hz;
}

_Noreturn void machine_exit(u32 status) {
  kputs("KERNEL exit status=");
  kput_dec(status);
  kputs(" ticks=");
  kput_dec(rr_task_table.ticks);
  kputs(" cpl0=");
  kput_dec(rr_task_table.ticks_cpl0);
  kputs(" cpl3=");
  kput_dec(rr_task_table.ticks_cpl3);
  kputs(" irqhash=");
  kput_hex(rr_task_table.irq_hash);
  kputs("\n");
  outb(0xf4, (u8)status);
  for (;;) __asm__ volatile("cli; hlt"); /* no exit device: stop here */
}

_Noreturn void panic(const char* what, const struct rr_trap_frame* frame) {
  kputs("\nKERNEL PANIC: ");
  kputs(what);
  if (frame) {
    u64 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    kputs(" vector=");
    kput_dec(frame->vector);
    kputs(" error=");
    kput_hex(frame->error_code);
    kputs(" rip=");
    kput_hex(frame->rip);
    kputs(" rsp=");
    kput_hex(frame->rsp);
    kputs(" cr2=");
    kput_hex(cr2);
  }
  kputs("\n");
  machine_exit(EXIT_KERNEL_PANIC);
}

/* Firmware normally leaves the local APIC in virtual-wire mode (LINT0 = ExtINT) so that 8259
 * interrupts reach the CPU; QEMU's microvm firmware does not. Only on request
 * (`lapic_virtual_wire=1`), because rr-vmm has no local APIC. */
static void enable_lapic_virtual_wire(void) {
  const u64 lapic = 0xfee00000ul;
  mmio_write32(lapic + 0xf0, mmio_read32(lapic + 0xf0) | 0x100); /* software enable */
  mmio_write32(lapic + 0x350, 0x700);                            /* LINT0: ExtINT */
}

void kernel_main(u32 start_info_paddr) {
  const struct hvm_start_info* info = (const struct hvm_start_info*)(u64)start_info_paddr;
  const struct rr_program* program = &rr_program;
  load_cmdline(info);
  serial_init();
  kputs("KERNEL rr test guest: program=");
  kputs(program->name);
  kputs(" ram_kib=");
  kput_dec(ram_kib(info));
  kputs(" cmdline=\"");
  kputs(kernel_cmdline);
  kputs("\"\n");

  if (cmdline_int("lapic_virtual_wire", 0)) enable_lapic_virtual_wire();
  load_tss();
  load_idt();
  pic_init();
  u32 hz = pit_init((u32)cmdline_int("hz", program->timer_hz ? program->timer_hz : 100));
  pic_unmask(IRQ_TIMER);
  if (program->flags & RR_PROGRAM_SERIAL_INPUT) {
    pic_unmask(IRQ_COM1);
    serial_enable_receive_interrupt();
  }
  if (program->flags & RR_PROGRAM_VIRTIO_NET) {
    if (virtio_net_init() == 0 && virtio_net_irq_line() < 16) pic_unmask(virtio_net_irq_line());
  }
  kputs("KERNEL timer_hz=");
  kput_dec(hz);
  kputs(" tasks=");
  kput_dec(program->task_count);
  kputs("\n");

  sched_init(program, (u64)boot_pml4);
  /* bootspin=N: before any user task runs, spin N ticks counting in a register, then N
   * counting only in memory, then N calling a function at every pass, then N filling a
   * page with rep stosb: timer interrupts in kernel code that never left CPL0; then
   * N * 300 passes of that function with interrupts off (~30 ms per 300 passes where
   * kernel code is emulated). */
  u64 bootspin = (u64)cmdline_int("bootspin", 0);
  if (bootspin) {
    u64 in_registers = kernel_spin(bootspin, 0), in_memory = kernel_spin(bootspin, 1);
    u64 calling = kernel_spin_calling(bootspin), filling = kernel_spin_rep_string(bootspin);
    kernel_spin_interrupts_off(bootspin * 300);
    kputs("KERNEL bootspin loops=");
    kput_dec(in_registers);
    kputs(",");
    kput_dec(in_memory);
    kputs(",");
    kput_dec(calling);
    kputs(",");
    kput_dec(filling);
    kputs("\n");
  }
  sched_start();
}
