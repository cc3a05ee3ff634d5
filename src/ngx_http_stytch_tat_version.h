/*
 * The module's version: the one place it is written.  The Makefile (make
 * dist, make deb) and debian/changelog are checked against it.
 */

#ifndef _NGX_HTTP_STYTCH_TAT_VERSION_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_VERSION_H_INCLUDED_


#define NGX_HTTP_STYTCH_TAT_VERSION  "0.2.0"


#endif /* _NGX_HTTP_STYTCH_TAT_VERSION_H_INCLUDED_ */
