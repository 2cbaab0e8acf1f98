#ifndef ALTI_CLIBARCHIVE_SHIM_H
#define ALTI_CLIBARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
