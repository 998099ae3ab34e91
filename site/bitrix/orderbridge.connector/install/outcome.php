<?php
/*
 * The outcome page of a step (step.php after DoInstall, unstep2.php after DoUninstall's
 * second step), inside the admin's prolog and epilog that CMain::IncludeAdminFile() puts
 * around it: the reason when the step failed (it put it in $APPLICATION->ThrowException),
 * else that it worked, and a way back. The including page has loaded its messages and
 * names them in $orderbridgeOutcome ['error' => code, 'ok' => code].
 */

use Bitrix\Main\Localization\Loc;

if (!check_bitrix_sessid()) {
	return;
}

global $APPLICATION;
if ($exception = $APPLICATION->GetException()) {
	CAdminMessage::ShowMessage([
		'TYPE' => 'ERROR',
		'MESSAGE' => Loc::getMessage($orderbridgeOutcome['error']),
		'DETAILS' => $exception->GetString(),
		'HTML' => false,
	]);
} else {
	CAdminMessage::ShowNote(Loc::getMessage($orderbridgeOutcome['ok']));
}
?>
<form action="<?= htmlspecialcharsbx($APPLICATION->GetCurPage()) ?>">
	<input type="hidden" name="lang" value="<?= htmlspecialcharsbx(LANGUAGE_ID) ?>">
	<input type="submit" value="<?= htmlspecialcharsbx(Loc::getMessage('ORDERBRIDGE_STEP_BACK')) ?>">
</form>
