/*
 * sendmail.h - `recrypt sendmail`, the sendmail drop-in for mail programs
 * (sendmail.c has the rules).
 */
#ifndef RECRYPT_CLIENT_SENDMAIL_H
#define RECRYPT_CLIENT_SENDMAIL_H

/* argv: the arguments after "sendmail". Returns the exit status. */
int client_sendmail(int argc, char **argv);

#endif
