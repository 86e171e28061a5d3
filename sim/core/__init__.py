"""The Cortex-M4 core around Unicorn's CPU: exceptions, NVIC, SCB, SysTick, DWT, semihosting."""
