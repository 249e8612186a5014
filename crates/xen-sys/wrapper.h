/* The Xen headers xen-sys binds: libxl (domain build, devices), libxenctrl (cheap polling)
 * and libxentoollog (the logger libxl and libxenctrl report through). */
#include <stdio.h>
#include <stdlib.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <xenctrl.h>
#include <xentoollog.h>
