"""Host-side harness of the serial link tests: builds of firmware/link, a fake device, fuzzers."""
