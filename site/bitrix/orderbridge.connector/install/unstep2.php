<?php
/*
 * Uninstall, step 2: the outcome of DoUninstall's second step (outcome.php). An error that
 * it put in $APPLICATION->ThrowException is shown; the module then stays registered, to
 * try again.
 */

\Bitrix\Main\Localization\Loc::loadMessages(__FILE__);
$orderbridgeOutcome = ['error' => 'ORDERBRIDGE_UNSTEP_ERROR', 'ok' => 'ORDERBRIDGE_UNSTEP_OK'];
require __DIR__ . '/outcome.php';
