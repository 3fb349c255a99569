#ifndef LS_LAYOUT_H
#define LS_LAYOUT_H
#include <lingerstack/ws2spi.h>
/* Number of mismatches (printed). */
int check_layout(void);
#endif
