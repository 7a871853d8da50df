#pragma once
// How devices end the machine: the 0xf4 exit port and the i8042 reset line.
// The machine implements this and stops its run loop after the current exit.
namespace vmm {

class PowerControl {
 public:
  virtual ~PowerControl() = default;
  // The guest asked to power off with this exit status (0xf4 port).
  virtual void request_exit(int status) = 0;
  // The guest pulsed the CPU reset line (i8042 0xFE, triple fault is separate).
  virtual void request_reset() = 0;
};

}  // namespace vmm
