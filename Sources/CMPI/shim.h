#ifndef PGAN_CMPI_SHIM_H
#define PGAN_CMPI_SHIM_H
#include <mpi.h>

/* Open MPI's predefined handles (MPI_COMM_WORLD, MPI_BYTE, ...) are macros over addresses of globals, which Swift
   cannot import; these functions hand them over. Only Sources/pgan/MPIProcessGroup.swift uses them. */
static inline MPI_Comm pgan_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype pgan_mpi_byte(void) { return MPI_BYTE; }
static inline void *pgan_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *pgan_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Request pgan_mpi_request_null(void) { return MPI_REQUEST_NULL; }
#endif
